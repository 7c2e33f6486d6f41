import LogFormat

/// What a log directory holds, found without changing a byte: the recovery scan in dry-run mode, then,
/// when asked, every frame read back, verified and decompressed. Safe beside a live writer: files are
/// opened read-only and the writer's lock is never taken (a live log shows as a consistent prefix, its
/// last group possibly as a torn tail).
public struct LogInspection: Sendable {
    /// One segment file of the log, as the inspection found it.
    public struct Segment: Sendable {
        /// The file name: the segment's first LSN in 20 digits, then `.wal`.
        public var name: String
        /// The file's path: `directory`, then `name`.
        public var path: String
        /// The segment's sequence number, from its header.
        public var segmentID: SegmentID
        /// The LSN of the segment's first record.
        public var firstLSN: LSN
        /// The LSN after the segment's last record.
        public var endLSN: LSN
        /// Frames of records in the file, `.lost` frames included; the seal of a clean close is not counted.
        public var frames: Int
        /// The file's size (`fstat`): the whole preallocated segment, written or not.
        public var sizeBytes: Int
        /// Bytes of frames (headers, stored payloads, padding).
        public var frameBytes: Int
        /// Payload bytes of those frames as stored (after LZ4), without headers and padding.
        public var storedPayloadBytes: Int
        /// Payload bytes of those frames before compression: records and their 4-byte lengths (for `.lost`
        /// frames, the zero filling).
        public var uncompressedPayloadBytes: Int
        /// Records the segment holds, lost ones included (`endLSN - firstLSN`).
        public var records: UInt64 { endLSN.rawValue - firstLSN.rawValue }
    }

    /// What recovery would make of the log; with `verifyPayloads`, a payload that does not decode is a
    /// `.corruption` too.
    public enum Verdict: Sendable, Equatable {
        /// Every frame intact, the segments in sequence.
        case clean
        /// The end of the log holds a torn write that recovery would cut (normal after a crash).
        case tornTail(RecoveryReport.Cut)
        /// Damage to records that a later frame proves were confirmed.
        case corruption(RecoveryReport.Cut)
    }

    /// The log directory inspected, as given.
    public var directory: String
    /// The log's identity, from its segment headers; nil when the directory holds no segment.
    public var identity: LogIdentity?
    /// The segment files, oldest first, up to where recovery would cut the log (files after a cut are not
    /// listed).
    public var segments: [Segment]
    /// Whether the log is intact, ends in a torn tail, or holds damaged confirmed records.
    public var verdict: Verdict
    /// Whether the log ends with the seal frame of a clean close and recovery would cut nothing.
    public var cleanShutdown: Bool
    /// The LSN of the oldest record the log holds; `LSN.first` when it holds no segment.
    public var firstLSN: LSN
    /// The LSN after the last intact record (what the next append would get after recovery).
    public var nextLSN: LSN
    /// Whether some process holds the writer's lock right now.
    public var writerHoldsLock: Bool
    /// Frames whose payload did not decompress or whose records did not add up (only with `verifyPayloads`).
    public var payloadDefects: [(path: String, offset: Int, lsn: LSN, defect: BatchDefect)]
    /// With a `.corruption` verdict: what opening in salvage mode would do about it.
    public var salvagePlan: SalvagePlan?
    /// Records an earlier salvage took out of the log (`.lost` frames).
    public var lostLSNs: [ClosedRange<UInt64>]
}

/// Read-only and offline access to a log directory, without opening it as a `WriteAheadLog`: inspection, a
/// walk over the records, the writer-lock probe, and recovery without appending (what `walctl` is built on).
public enum LogInspector {
    /// Inspects the log in `directory`. With `verifyPayloads`, also decompresses and checks every frame.
    /// `progress` hears what is being done ("scanning", "verifying") and how far (done, total) per segment.
    public static func inspect(directory: String, verifyPayloads: Bool = false,
                               fileSystem: any FileSystem = PosixFileSystem(),
                               progress: ((_ phase: String, _ done: Int, _ total: Int) -> Void)? = nil)
    throws(WALError) -> LogInspection {
        var options = LogOptions()
        options.recoveryMode = .salvage
        var recovery = Recovery(directory: directory, options: options, fileSystem: fileSystem, dryRun: true)
        recovery.progress = progress.map { report in { report("scanning", $0, $1) } }
        let outcome = try recovery.run()
        let verdict: LogInspection.Verdict
        if let cut = outcome.report.salvaged {
            verdict = .corruption(cut)
        } else if let cut = outcome.report.tornTail {
            verdict = .tornTail(cut)
        } else {
            verdict = .clean
        }
        var segments: [LogInspection.Segment] = []
        var defects: [(String, Int, LSN, BatchDefect)] = []
        var frame: [UInt8] = []
        var payload: [UInt8] = []
        for (index, s) in outcome.segments.enumerated() {
            if verifyPayloads { progress?("verifying", index, outcome.segments.count) }
            let fd = try fileSystem.open(s.path, writable: false, create: false)
            defer { fileSystem.close(fd) }
            var summary = LogInspection.Segment(
                name: String(s.path.split(separator: "/").last ?? ""), path: s.path, segmentID: s.segmentID,
                firstLSN: s.firstLSN, endLSN: s.endLSN, frames: s.frames.count,
                sizeBytes: try fileSystem.size(fd, path: s.path), frameBytes: 0, storedPayloadBytes: 0,
                uncompressedPayloadBytes: 0)
            for location in s.frames {
                let header = verifyPayloads
                    ? try FrameReading.read(fd, path: s.path, location: location, into: &frame, fileSystem: fileSystem)
                    : try FrameReading.readHeader(fd, path: s.path, location: location, fileSystem: fileSystem)
                summary.frameBytes += header.frameBytes
                summary.storedPayloadBytes += Int(header.storedBytes)
                summary.uncompressedPayloadBytes += Int(header.uncompressedBytes)
                guard verifyPayloads, header.kind != .lost else { continue }
                if case .failure(let defect) = FrameReading.decode(frame, header: header, into: &payload) {
                    defects.append((s.path, Int(location.offset), header.firstLSN, defect))
                }
            }
            segments.append(summary)
        }
        var finalVerdict = verdict
        if case .clean = verdict, let defect = defects.first {
            // The checksum held but the payload does not decode: written that way, or damaged together
            // with its checksum. Either way the records are not servable.
            finalVerdict = .corruption(RecoveryReport.Cut(
                path: defect.0, offset: defect.1, cause: .defectiveFrame, reason: "payload: \(defect.3)", framesDropped: 0, segmentsRemoved: 0,
                droppedLSNs: nil, firstLostLSN: defect.2.rawValue, laterWatermark: defect.2.rawValue))
        }
        return LogInspection(
            directory: directory, identity: segments.isEmpty ? nil : outcome.identity, segments: segments,
            verdict: finalVerdict, cleanShutdown: outcome.report.cleanShutdown, firstLSN: outcome.report.firstLSN,
            nextLSN: outcome.nextLSN, writerHoldsLock: writerHoldsLock(directory), payloadDefects: defects,
            salvagePlan: outcome.report.salvagePlan, lostLSNs: outcome.report.lostLSNs)
    }

    /// Calls `body` with each intact record from `start` through `end`, with the header of its frame and
    /// the frame's position, reading the log read-only. Stops when `body` returns false.
    public static func forEachRecord(
        directory: String, from start: LSN = .first, through end: LSN = LSN(UInt64.max),
        fileSystem: any FileSystem = PosixFileSystem(), onLost: ((ClosedRange<UInt64>) -> Void)? = nil,
        _ body: (_ lsn: LSN, _ record: UnsafeRawBufferPointer, _ frame: FrameHeader, _ path: String, _ offset: Int) throws -> Bool
    ) throws {
        var options = LogOptions()
        options.recoveryMode = .salvage
        var recovery = Recovery(directory: directory, options: options, fileSystem: fileSystem, dryRun: true)
        let outcome = try recovery.run()
        // The log's own reader over what recovery found: the same frame reading, checks and lost ranges.
        let reader = LogReader(fileSystem: fileSystem, catalog: SegmentCatalog(outcome.segments))
        defer { reader.forget(nil) }
        let last = min(end, LSN(outcome.nextLSN.rawValue &- 1))
        let first = max(start, outcome.segments.first?.firstLSN ?? .first)
        guard outcome.nextLSN.rawValue > 1, first <= last else { return }
        try reader.forEachRecordWithFrame(from: first, through: last, onLost: onLost, body)
    }

    /// Whether a process holds the log's writer lock: probes with a shared, non-blocking `flock` that is
    /// released at once (a writer opening in that instant would see the log as locked and can retry).
    public static func writerHoldsLock(_ directory: String) -> Bool {
        let fd = Platform.openFile("\(directory)/LOCK", writable: false, create: false)
        guard fd >= 0 else { return false }
        defer { Platform.closeFile(fd) }
        if Platform.tryLock(fd, shared: true) == 0 {
            Platform.unlock(fd)
            return false
        }
        return Platform.errno == Platform.Errno.wouldBlock
    }
}

extension LogInspector {
    /// Does to the log what `WriteAheadLog.open` does before it appends, and nothing else: cuts a torn
    /// tail (zeroes it, deletes later segments, syncs); with `salvage`, also what salvage mode does about
    /// damaged confirmed records (`SalvagePlan`). Takes the writer's lock for the duration.
    /// - Throws: `.locked` when a writer has the log open; `.corruption` (changing nothing) when damage
    ///   to confirmed data is found and `salvage` is false.
    public static func recover(directory: String, salvage: Bool = false,
                               fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) -> RecoveryReport {
        let lockPath = "\(directory)/LOCK"
        let lockFD = try fileSystem.open(lockPath, writable: true, create: true)
        defer { fileSystem.close(lockFD) }
        try fileSystem.lockExclusivelySoon(lockFD, path: lockPath)
        var options = LogOptions()
        if salvage { options.recoveryMode = .salvage }
        var recovery = Recovery(directory: directory, options: options, fileSystem: fileSystem)
        return try recovery.run().report
    }
}
