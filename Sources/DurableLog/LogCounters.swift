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

    public struct Snapshot: Sendable, Equatable {
        /// Calls of any append form that were accepted.
        public var appends: UInt64
        public var records: UInt64
        /// Groups committed: each one `pwrite` (two across a segment roll).
        public var groups: UInt64
        public var frames: UInt64
        public var syncs: UInt64
        public var syncNanoseconds: UInt64
        public var syncNanosecondsMax: UInt64
        /// Batch payload bytes before compression (records and their 4-byte lengths).
        public var bytesUncompressed: UInt64
        /// Frame bytes written to segments (headers, stored payloads, padding).
        public var bytesWritten: UInt64

        public var recordsPerSync: Double { syncs == 0 ? 0 : Double(records) / Double(syncs) }
        public var syncMicrosecondsMean: Double { syncs == 0 ? 0 : Double(syncNanoseconds) / Double(syncs) / 1000 }
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
