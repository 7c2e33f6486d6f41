import CoreMetrics
import LogFormat
import Logging

/// How a log is laid out and how its writer batches. Defaults suit 1 KiB messages on an SSD.
public struct LogOptions: Sendable {
    /// Size of each segment file; segments are preallocated and zero-filled to this size, or recycled from
    /// segments freed by truncation (up to two such spares are kept, beside the log's segments, on disk).
    public var segmentBytes = 64 << 20
    /// Uncompressed payload bytes per frame at most; a group larger than this is split into several frames.
    public var frameBytesMax = 1 << 20
    /// The largest single record (bounded by `frameBytesMax` less the length prefix).
    public var recordBytesMax = (1 << 20) - 4
    /// Bytes waiting for the writer at most; appends past it wait (async, blocking) or fail (`tryAppend`).
    public var pendingBytesMax = 8 << 20
    /// Records waiting for the writer at most (bounds a group of many small records the same way).
    public var pendingRecordsMax = 65_536
    /// LZ4 compresses each frame when that saves space; `.none` stores raw.
    public var compression: FrameHeader.Codec = .lz4
    /// How many `fdatasync` calls may be in flight at once. One (the default) makes groups as large as
    /// Little's law allows: what arrives during a sync joins the next group. More overlap syncs of smaller
    /// groups, which pays only on a device that runs flushes in parallel.
    public var syncsInFlightMax = 1
    /// While a sync is in flight, pending records are encoded, compressed and written ahead (to be covered
    /// by the next sync) once they reach this many bytes, so that this work overlaps the disk's instead of
    /// following it. Smaller values overlap more and compress in smaller frames.
    public var runAheadBytes = 16 << 10
    /// A callback append made with `tryAppend(..., callbackOnCaller: true)` to an idle log is written, synced
    /// and completed on the calling thread instead of the log's threads, saving two thread wake-ups. Off by
    /// default: it blocks the caller for one `fdatasync`, so turn it on only when such callers run on threads
    /// of their own, never on Swift's cooperative pool. `appendAndWait` always commits an idle log on its own
    /// (already blocked) thread; an `async` append never blocks its thread.
    public var commitOnCallerWhenIdle = false
    /// Written into every frame header; 0 on a single node.
    public var leaderEpoch: UInt64 = 0
    /// A replication leader's log: appends complete only once the in-sync replicas have also reported them
    /// durable (`WriteAheadLog.replicasDurable(through:)`), and frames carry that committed watermark. Set by
    /// the replication layer, which starts with nothing reported.
    package var confirmsWaitForReplicas = false
    /// A follower replica's log: it takes frames its leader wrote, byte for byte (`acceptShipped`), never
    /// appends of its own, and writes no seal at close, so that its segments stay identical to the leader's.
    package var isReplica = false
    /// The identity the log must have: an empty directory takes it with its first segment (a new follower
    /// takes its leader's), and a log that holds another refuses to open (`.invalidLog`): replicas of one
    /// group share one identity. Nil: a new log makes up its own.
    package var identity: LogIdentity?
    /// Where the log reports recovery, cut tails, salvage, failed and slow syncs (swift-log). nil: a logger
    /// labelled "DurableLog" from the application's logging bootstrap (a store passes its own).
    public var logger: Logger?
    /// Where the log's metrics go (swift-metrics; see `LogTelemetry` for the names). nil: the factory the
    /// application bootstrapped (`MetricsSystem.factory`; no-op without one).
    public var metricsFactory: (any MetricsFactory)?
    /// An `fdatasync` slower than this is logged as a warning.
    public var slowSyncThreshold: Duration = .milliseconds(200)
    /// What `open` does with corruption of confirmed data.
    public var recoveryMode: RecoveryMode = .strict
    /// `.unsafeNoSync` skips `fdatasync` to show what durability costs in the benchmark: confirms then mean
    /// nothing after a power loss. Benchmark rigging: `package` access, not part of the product.
    package var durability: Durability = .fdatasync
    /// No threads of the log's own: nothing is written or synced until its owner calls
    /// `WriteAheadLog.performIO()`, which does on the caller's thread what an I/O thread would do next, and a
    /// new segment is prepared when it is taken. For a deterministic simulation, whose seed then decides when
    /// each log writes and syncs. Appends must complete by callback or `async` (nothing else runs the I/O
    /// an `appendAndWait` would wait for). Simulation rigging: `package` access.
    package var threadless = false

    /// What `WriteAheadLog.open` does about damage to records that a later frame proves were confirmed (a
    /// torn tail is cut in either mode).
    public enum RecoveryMode: Sendable {
        /// Open fails with `WALError.corruption` naming the damaged place.
        case strict
        /// Open cuts the log at the last intact record before the damage and reports what it dropped.
        case salvage
    }

    package enum Durability: Sendable { case fdatasync, unsafeNoSync }

    /// The defaults given at each property.
    public init() {}

    func validate() throws(WALError) {
        guard segmentBytes >= 1 << 16, segmentBytes % 4096 == 0 else {
            throw WALError(.invalidLog, "segmentBytes must be a multiple of 4096 and at least 64 KiB")
        }
        guard frameBytesMax >= 4096, FrameEncoder.frameBytesMax(payloadBytes: frameBytesMax)
            <= segmentBytes - SegmentHeader.blockBytes - FrameHeader.encodedBytes else {
            throw WALError(.invalidLog, "frameBytesMax must be at least 4096 and fit a segment")
        }
        guard recordBytesMax > 0, recordBytesMax + BatchPayload.lengthPrefixBytes <= frameBytesMax else {
            throw WALError(.invalidLog, "recordBytesMax plus its 4-byte length must fit frameBytesMax")
        }
        guard pendingBytesMax >= frameBytesMax else {
            throw WALError(.invalidLog, "pendingBytesMax must be at least frameBytesMax")
        }
        guard pendingRecordsMax >= 1 else { throw WALError(.invalidLog, "pendingRecordsMax must be at least 1") }
        guard (1...16).contains(syncsInFlightMax) else {
            throw WALError(.invalidLog, "syncsInFlightMax must be between 1 and 16")
        }
        guard runAheadBytes >= 0 else { throw WALError(.invalidLog, "runAheadBytes must not be negative") }
    }
}
