import Synchronization

/// Counters of the write path, updated by the writer and sync threads, readable at any time.
public final class LogCounters: Sendable {
    let appends = Atomic<UInt64>(0)
    let records = Atomic<UInt64>(0)
    let groups = Atomic<UInt64>(0)
    let frames = Atomic<UInt64>(0)
    let syncs = Atomic<UInt64>(0)
    let syncNanoseconds = Atomic<UInt64>(0)
    let syncNanosecondsMax = Atomic<UInt64>(0)
    let bytesUncompressed = Atomic<UInt64>(0)
    let bytesWritten = Atomic<UInt64>(0)

    /// The counters' values at one moment (`snapshot()`): totals since the log was opened. `since(_:)` gives
    /// the activity between two of them.
    public struct Snapshot: Sendable, Equatable {
        /// Calls of any append form that were accepted.
        public var appends: UInt64
        /// Records written to segments, counted when their group's `pwrite` returned (before its sync).
        public var records: UInt64
        /// Groups committed: each one `pwrite` (two across a segment roll).
        public var groups: UInt64
        /// Frames written: one or more per group (a group's payload is cut into frames of at most
        /// `frameBytesMax`); the seal frame of a clean close is not counted.
        public var frames: UInt64
        /// `fdatasync` calls of segment files that succeeded: each covers every group written before it (so
        /// there can be fewer than `groups`), including those before a segment roll and the seal's at close.
        public var syncs: UInt64
        /// Time spent in those `fdatasync` calls, in nanoseconds (monotonic clock).
        public var syncNanoseconds: UInt64
        /// The longest single `fdatasync` since the log was opened, in nanoseconds.
        public var syncNanosecondsMax: UInt64
        /// Batch payload bytes before compression (records and their 4-byte lengths).
        public var bytesUncompressed: UInt64
        /// Frame bytes written to segments (headers, stored payloads, padding).
        public var bytesWritten: UInt64

        /// Records per successful `fdatasync` (`records / syncs`), the batching group commit achieved; 0
        /// without a sync.
        public var recordsPerSync: Double { syncs == 0 ? 0 : Double(records) / Double(syncs) }
        /// Mean time of a successful `fdatasync`, in microseconds; 0 without a sync.
        public var syncMicrosecondsMean: Double { syncs == 0 ? 0 : Double(syncNanoseconds) / Double(syncs) / 1000 }
        /// Frame bytes written per record (`bytesWritten / records`): after compression, headers and padding
        /// included; 0 without a record.
        public var bytesWrittenPerRecord: Double { records == 0 ? 0 : Double(bytesWritten) / Double(records) }

        /// What happened between `earlier` and this snapshot (the maximum sync time stays this one's).
        public func since(_ earlier: Snapshot) -> Snapshot {
            var d = self
            d.appends -= earlier.appends
            d.records -= earlier.records
            d.groups -= earlier.groups
            d.frames -= earlier.frames
            d.syncs -= earlier.syncs
            d.syncNanoseconds -= earlier.syncNanoseconds
            d.bytesUncompressed -= earlier.bytesUncompressed
            d.bytesWritten -= earlier.bytesWritten
            return d
        }
    }

    /// The counters now. Each is read atomically on its own, so a snapshot taken while the log writes can
    /// catch one counter before a group's update and the next after it.
    public func snapshot() -> Snapshot {
        Snapshot(
            appends: appends.load(ordering: .relaxed), records: records.load(ordering: .relaxed),
            groups: groups.load(ordering: .relaxed), frames: frames.load(ordering: .relaxed),
            syncs: syncs.load(ordering: .relaxed), syncNanoseconds: syncNanoseconds.load(ordering: .relaxed),
            syncNanosecondsMax: syncNanosecondsMax.load(ordering: .relaxed),
            bytesUncompressed: bytesUncompressed.load(ordering: .relaxed),
            bytesWritten: bytesWritten.load(ordering: .relaxed))
    }

    func recordSync(nanoseconds: UInt64) {
        syncs.add(1, ordering: .relaxed)
        syncNanoseconds.add(nanoseconds, ordering: .relaxed)
        var seen = syncNanosecondsMax.load(ordering: .relaxed)
        while nanoseconds > seen {
            let (exchanged, original) = syncNanosecondsMax.compareExchange(
                expected: seen, desired: nanoseconds, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }
}
