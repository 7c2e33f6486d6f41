import LogFormat

/// How the logs of one replication group's replicas compare, frame by frame, without changing a byte:
/// replication promises that every replica holds its leader's frames at the same place of the same segment,
/// byte for byte, so two replicas may differ only where one of them holds an uncommitted tail it will cut
/// when it rejoins, or ends earlier (it is behind).
///
/// Each directory is inspected read-only (the recovery scan in dry-run mode, as `LogInspector` does; safe beside
/// a live writer) and only its intact frames are compared: a torn tail recovery would cut is not part of the
/// log. Seals (a leader's clean close writes one, a follower none of its own) are not compared, but their
/// watermarks count. One segment file per replica is held in memory at a time.
public struct LogComparison: Sendable {
    /// One replica's log as compared.
    public struct Replica: Sendable {
        /// The directory, as given.
        public var directory: String
        /// The LSN of its oldest record.
        public var firstLSN: LSN
        /// The LSN after its last intact record.
        public var endLSN: LSN
        /// The highest committed watermark its frames carry (what its leaders had confirmed when they wrote
        /// them).
        public var committedLSN: LSN
        /// Whether recovery would cut a torn tail or refuse damage (`LogInspection.Verdict`).
        public var verdict: LogInspection.Verdict
    }

    /// The first frame where two replicas that both hold records at its LSN differ.
    public struct Difference: Sendable {
        /// The LSN where they part.
        public var lsn: LSN
        /// The two replicas (indices into `replicas`): the first that holds a frame there, and one that
        /// holds another.
        public var replicas: (Int, Int)
        /// What each holds there, in words (epoch, segment, offset, LSNs).
        public var frames: (String, String)
        /// At or below the committed LSN: records every in-sync replica confirmed differ, which replication
        /// never allows (a bug, or damage). Above it: an uncommitted tail that the replica cuts when it rejoins
        /// its leader.
        public var withinCommitted: Bool
    }

    /// The replicas, in the order given.
    public var replicas: [Replica]
    /// The highest committed watermark in any replica's frames.
    public var committedLSN: LSN
    /// The first difference; nil when every frame that two replicas both hold is the same, byte for byte.
    public var difference: Difference?
    /// The LSN through which the replicas were compared and agree: the end of the shortest log when there
    /// is no difference, else the difference's LSN.
    public var agreeBefore: LSN

    /// Compares the logs in `directories` (at least two, all of one log identity; a directory without a
    /// segment counts as an empty replica).
    /// - Throws: `.invalidArgument` with fewer than two directories; `.invalidLog` when they hold different
    ///   logs; `.ioFailure`.
    public static func compare(_ directories: [String],
                               fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) -> LogComparison {
        try compare(directories.map { ($0, fileSystem) })
    }

    /// Compares logs each read through its own file system (replicas on simulated disks).
    public static func compare(_ logs: [(directory: String, fileSystem: any FileSystem)]) throws(WALError) -> LogComparison {
        guard logs.count >= 2 else {
            throw WALError(.invalidArgument, "compare needs at least two log directories")
        }
        var walkers: [FrameWalker] = []
        for (directory, fileSystem) in logs {
            let inspection = try LogInspector.inspect(directory: directory, fileSystem: fileSystem)
            // A directory without a segment (a replica that lost its disk) holds nothing yet: it is behind.
            if let identity = inspection.identity,
               let other = walkers.first(where: { $0.identity != nil }), let theirs = other.identity, theirs != identity {
                throw WALError(.invalidLog, "the log here is \(identity), the one in \(other.directory) is \(theirs): "
                               + "not replicas of one log", path: directory)
            }
            walkers.append(FrameWalker(inspection, fileSystem: fileSystem))
        }

        // Every frame of every replica is read once, in LSN order, from the highest first LSN on (a replica
        // whose head was truncated further holds nothing earlier to compare). Each round takes one frame from
        // every replica that has one left; equal frames end at equal LSNs, so the replicas stay in step, and a
        // replica that ends drops out.
        var difference: Difference?
        let start = walkers.map(\.firstLSN).max() ?? .first
        for i in walkers.indices { try walkers[i].skip(before: start) }
        scan: while true {
            var holder: (index: Int, frame: FrameWalker.Frame)?
            for i in walkers.indices {
                guard let frame = try walkers[i].next() else { continue }
                guard let (h, first) = holder else {
                    holder = (i, frame)
                    continue
                }
                if !frame.sameAs(first) {
                    difference = Difference(lsn: max(first.header.firstLSN, frame.header.firstLSN, start), replicas: (h, i),
                                            frames: (first.description, frame.description), withinCommitted: false)
                    break scan
                }
            }
            if holder == nil { break }
        }
        // What the rest of each log carries still counts for the committed watermark.
        for i in walkers.indices { try walkers[i].drain() }
        let committed = walkers.map(\.committedLSN).max() ?? .none
        if var found = difference {
            found.withinCommitted = found.lsn <= committed
            difference = found
        }
        let shortest = walkers.map(\.endLSN).min() ?? .first
        return LogComparison(
            replicas: walkers.map {
                Replica(directory: $0.directory, firstLSN: $0.firstLSN, endLSN: $0.endLSN, committedLSN: $0.committedLSN,
                        verdict: $0.verdict)
            },
            committedLSN: committed, difference: difference, agreeBefore: difference?.lsn ?? max(shortest, start))
    }
}

/// One replica's intact frames of records, in order, read a segment file at a time.
private struct FrameWalker {
    struct Frame {
        var header: FrameHeader
        var offset: Int
        var bytes: ArraySlice<UInt8>

        /// The same frame at the same place: segment, offset and every byte (its header names its LSNs, epoch
        /// and watermark, and its checksum covers the payload).
        func sameAs(_ other: Frame) -> Bool {
            header.segmentID == other.header.segmentID && offset == other.offset && bytes == other.bytes
        }

        var description: String {
            "epoch \(header.leaderEpoch), segment \(header.segmentID) at byte \(offset), "
                + "LSNs \(header.firstLSN)..<\(header.endLSN), \(bytes.count) bytes"
        }
    }

    let directory: String
    /// Nil for a directory that holds no segment.
    let identity: LogIdentity?
    let firstLSN: LSN
    let endLSN: LSN
    let verdict: LogInspection.Verdict
    private let segments: [LogInspection.Segment]
    private let fileSystem: any FileSystem
    private var segmentIndex = -1
    private var file: [UInt8] = []
    private var offset = 0
    private var pending: Frame?
    private(set) var committedLSN = LSN.none

    init(_ inspection: LogInspection, fileSystem: any FileSystem) {
        directory = inspection.directory
        identity = inspection.identity
        firstLSN = inspection.firstLSN
        endLSN = inspection.nextLSN
        verdict = inspection.verdict
        segments = inspection.segments
        self.fileSystem = fileSystem
    }

    /// The next intact frame of records before `endLSN`; nil at the end.
    mutating func next() throws(WALError) -> Frame? {
        if let frame = pending {
            pending = nil
            return frame
        }
        while true {
            if segmentIndex >= 0, segmentIndex < segments.count, let frame = frameHere() { return frame }
            segmentIndex += 1
            guard segmentIndex < segments.count else { return nil }
            file = try SmallFile.contents(of: segments[segmentIndex].path, fileSystem: fileSystem)
            offset = SegmentHeader.blockBytes
        }
    }

    /// Skips the frames that end at or before `lsn`.
    mutating func skip(before lsn: LSN) throws(WALError) {
        while let frame = try next() {
            if frame.header.endLSN > lsn {
                pending = frame
                return
            }
        }
    }

    /// Reads the rest, for its watermarks.
    mutating func drain() throws(WALError) {
        while try next() != nil {}
    }

    /// The next frame of records in the loaded segment, if any (seals skipped).
    private mutating func frameHere() -> Frame? {
        let segment = segments[segmentIndex]
        while offset + FrameHeader.encodedBytes <= file.count {
            let check = file.withUnsafeBytes {
                FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[offset...]),
                                  storedBytesMax: file.count - offset - FrameHeader.encodedBytes)
            }
            guard case .intact(let header) = check, header.segmentID == segment.segmentID,
                  header.firstLSN < segment.endLSN || header.kind == .seal else { return nil }
            let at = offset
            offset += header.frameBytes
            committedLSN = max(committedLSN, header.durableLSN)  // a seal's too: the committed LSN at a close
            if header.kind == .seal { continue }
            return Frame(header: header, offset: at, bytes: file[at..<(at + header.frameBytes)])
        }
        return nil
    }
}
