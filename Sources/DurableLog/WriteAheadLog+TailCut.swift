import LogFormat

/// Cutting a follower's divergent tail: the records from a given LSN on, which no in-sync replica but this
/// one holds (found by the epoch exchange, `EpochHistory.truncationPoint`), leave the log durably before the
/// follower takes any frame of its new leader.
extension WriteAheadLog {
    /// Closes this follower's log after cutting every record from `next` on, durably: later segments are
    /// deleted (newest first, the directory synced after each, so a power cut leaves a prefix of the log), then
    /// every frame of this segment from the cut on is zeroed and the segment synced. Reopen the log to go on;
    /// it then ends at `next`, where a frame of this log ended, which is where its leader's frames continue.
    /// A power cut part-way leaves a log that ends at `next` or later; cutting again finishes the job.
    ///
    /// - Parameter committed: the highest LSN the follower knows committed (from its leader). A cut below it
    ///   would drop records every in-sync replica confirmed: refused, as it can only mean a bug.
    /// - Throws: `.invalidArgument` for a cut below `committed`, one where no frame ends, or on a leader's
    ///   log; `.lsnOutOfRange` for a cut before the log's first segment; `.ioFailure`. The log is closed
    ///   whenever this returns or throws, except when the arguments are refused.
    package func closeCuttingTail(from next: LSN, committed: LSN) throws(WALError) {
        guard options.isReplica else {
            throw WALError(.invalidArgument, "only a follower's log is cut back; a leader's log is never truncated")
        }
        guard next > committed else {
            throw WALError(.invalidArgument, "refused to cut the log from LSN \(next): records through \(committed) "
                           + "are committed, and every in-sync replica holds them (this would be a bug)")
        }
        let segments = catalog.snapshot
        let end = try Self.frameEnd(at: next, in: segments, catalog: catalog)
        try close()
        guard let end else { return }  // the log ends before `next`: nothing to cut
        for segment in segments[(end.segmentIndex + 1)...].reversed() {
            try fileSystem.remove(segment.path)
            try fileSystem.syncDirectory(directory)
        }
        let segment = segments[end.segmentIndex]
        try Self.zeroFrames(of: segment.segmentID, in: segment.path, from: end.offset, segmentBytes: options.segmentBytes,
                            fileSystem: fileSystem)
    }

    /// Where in `segments` the frame that ends at `next` ends (the segment's first frame position when the
    /// segment starts at `next`); nil when the log ends before `next`.
    static func frameEnd(at next: LSN, in segments: [SegmentCatalog.Segment],
                         catalog: SegmentCatalog) throws(WALError) -> (segmentIndex: Int, offset: Int)? {
        guard let index = SegmentCatalog.lastIndex(in: segments, where: { $0.firstLSN <= next }) else {
            throw WALError(.lsnOutOfRange, "LSN \(next) lies before this log's first segment (it starts at "
                           + "\(segments.first?.firstLSN ?? .first))")
        }
        let segment = segments[index]
        if next > segment.endLSN { return nil }
        let frames = try catalog.frames(of: segment)
        let after = frames.firstIndex { $0.firstLSN >= next.rawValue } ?? frames.count
        if after == 0 {
            guard next == segment.firstLSN else { throw notAFrameEnd(next) }
            return (index, SegmentHeader.blockBytes)
        }
        let before = frames[after - 1]
        guard before.firstLSN + UInt64(before.recordCount) == next.rawValue else { throw notAFrameEnd(next) }
        return (index, Int(before.offset) + Int(before.frameBytes))
    }

    static func notAFrameEnd(_ lsn: LSN) -> WALError {
        WALError(.invalidArgument, "no frame of this log ends at LSN \(lsn); logs are cut and continued only where "
                 + "a frame ends")
    }

    /// Zeroes, from `offset` on, every span of the segment that could be taken for a frame of it (a header
    /// with the frame magic and this segment's id, through the payload it announces), then syncs the file:
    /// recovery must find nothing of the cut records, not even behind a torn spot. Other bytes (a recycled
    /// file's frames of other segments) stay as they are; recovery never takes them for this segment's.
    static func zeroFrames(of segmentID: SegmentID, in path: String, from offset: Int, segmentBytes: Int,
                           fileSystem: any FileSystem) throws(WALError) {
        let fd = try fileSystem.open(path, writable: true, create: false)
        defer { fileSystem.close(fd) }
        let size = min(try fileSystem.size(fd, path: path), segmentBytes)
        guard offset < size else { return }
        var bytes = [UInt8](repeating: 0, count: size - offset)
        let n = try typedWAL { try bytes.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: offset, path: path) } }
        var dirtyEnd = 0
        bytes.withUnsafeBytes { b in
            func load<T: FixedWidthInteger>(_ at: Int, as: T.Type) -> T {
                T(littleEndian: b.loadUnaligned(fromByteOffset: at, as: T.self))
            }
            var at = 0
            while at + FrameHeader.encodedBytes <= n {
                if load(at + 4, as: UInt32.self) == FrameHeader.magic, load(at + 24, as: UInt64.self) == segmentID.rawValue {
                    let stored = Int(load(at + 12, as: UInt32.self))
                    dirtyEnd = max(dirtyEnd, min(n, at + FrameHeader.encodedBytes + stored))
                }
                at += 8
            }
        }
        guard dirtyEnd > 0 else { return }
        let zeros = [UInt8](repeating: 0, count: dirtyEnd)
        try typedWAL { try zeros.withUnsafeBytes { try fileSystem.write(fd, $0, at: offset, path: path) } }
        try fileSystem.dataSync(fd, path: path)
    }
}
