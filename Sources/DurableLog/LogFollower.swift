import LogFormat

/// Follows a log as it grows, read-only and beside a live writer (`walctl tail --follow`): each `poll` reads
/// only what was appended since the previous one, from the last segment on, and hands out only records that
/// are known durable: those at or below the highest watermark of a later frame, all records of a segment
/// the writer rolled past (a roll syncs first), and all records before a seal. The last group written shows
/// once the next one is written (or the log is closed): a record a crash could still cut is never shown.
public final class LogFollower {
    private let directory: String
    private let fileSystem: any FileSystem
    private var segmentID: SegmentID
    private var path: String
    private var fd: Int32
    private var offset: Int
    /// The LSN the next frame must start at.
    private var expected: LSN
    /// The next LSN to hand out, and the records read but not yet known durable.
    private var next: LSN
    private var held: [(LSN, [UInt8])] = []
    private var watermark = LSN.none
    private var frame: [UInt8] = []
    private var payload: [UInt8] = []

    /// Starts at `from` (clamped to the log's first record), or at the log's end when nil.
    public init(directory: String, from: LSN? = nil, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        self.directory = directory
        self.fileSystem = fileSystem
        var recovery = Recovery(directory: directory, options: LogOptions(), fileSystem: fileSystem, dryRun: true)
        recovery.verifyFrom = LSN(UInt64.max)  // closed segments: headers only; the last one is read whole
        let outcome = try recovery.run()
        guard let last = outcome.segments.last else {
            throw WALError(.invalidLog, "no segment to follow in \(directory)", path: directory)
        }
        let start = max(from ?? outcome.nextLSN, outcome.segments.first?.firstLSN ?? .first)
        // Start reading at the frame holding `start` (or the last segment's written end).
        let segment = outcome.segments.last { $0.firstLSN <= start } ?? last
        let frameIndex = SegmentCatalog.lastIndex(in: segment.frames) { $0.firstLSN <= start.rawValue }
        segmentID = segment.segmentID
        path = segment.path
        fd = try fileSystem.open(segment.path, writable: false, create: false)
        if let i = frameIndex {
            offset = Int(segment.frames[i].offset)
            expected = LSN(segment.frames[i].firstLSN)
        } else {
            offset = SegmentHeader.blockBytes
            expected = segment.firstLSN
        }
        next = start
        // Everything recovery saw before the log's current end in a closed segment is durable.
        if segment.segmentID != last.segmentID { watermark = LSN(last.firstLSN.rawValue - 1) }
    }

    deinit { fileSystem.close(fd) }

    /// Reads what was appended since the last call and calls `body` with each record now known durable, in
    /// LSN order, from the starting LSN on. Returns how many it handed out.
    @discardableResult
    public func poll(_ body: (LSN, UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        while try readFrame() {}
        var count = 0
        while let first = held.first, first.0 <= watermark {
            held.removeFirst()
            if first.0 >= next {
                try first.1.withUnsafeBytes { try body(first.0, $0) }
                next = first.0.next
                count += 1
            }
        }
        return count
    }

    /// Reads the next intact frame of this log, or moves to the next segment; false when there is nothing
    /// more yet (zeros, a frame still being written, a recycled file's older bytes).
    private func readFrame() throws(WALError) -> Bool {
        var head = [UInt8](repeating: 0, count: FrameHeader.encodedBytes)
        let n = try typedWAL { try head.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: offset, path: path) } }
        let peek = head.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[0..<n]), storedBytesMax: Int(UInt32.max), verifyingChecksum: false)
        }
        guard case .intact(let h) = peek, h.segmentID == segmentID, h.firstLSN == expected else { return try roll() }
        let size = h.frameBytes
        if frame.count < size { frame = [UInt8](repeating: 0, count: size) }
        let got = try typedWAL { try frame.withUnsafeMutableBytes { b in
            try fileSystem.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<size]), at: offset, path: path)
        } }
        let check = frame.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[0..<got]), storedBytesMax: size - FrameHeader.encodedBytes)
        }
        guard case .intact(let f) = check else { return false }  // still being written: try again later
        watermark = max(watermark, f.durableLSN)
        switch f.kind {
        case .seal:
            watermark = max(watermark, LSN(expected.rawValue - 1))
        case .lost:
            expected = f.endLSN
        case .records:
            guard case .success(let bytes) = FrameReading.decode(frame, header: f, into: &payload) else {
                throw WALError(.corruption, "a frame whose payload does not decode", path: path, offset: offset)
            }
            var lsn = f.firstLSN
            payload.withUnsafeBytes { p in
                BatchPayload.forEachRecord(UnsafeRawBufferPointer(rebasing: p[0..<bytes])) { record in
                    held.append((lsn, Array(record)))
                    lsn = lsn.next
                }
            }
            expected = f.endLSN
        }
        offset += size
        return true
    }

    /// Moves to the segment that continues the log at `expected`, when the writer created it; everything
    /// before it is durable (the writer syncs before a roll).
    private func roll() throws(WALError) -> Bool {
        let nextPath = "\(directory)/\(SegmentNames.name(firstLSN: expected))"
        guard let nextFD = try? fileSystem.open(nextPath, writable: false, create: false) else { return false }
        var block = [UInt8](repeating: 0, count: SegmentHeader.encodedBytes)
        let n = (try? typedWAL { try block.withUnsafeMutableBytes { try fileSystem.read(nextFD, into: $0, at: 0, path: nextPath) } }) ?? 0
        guard n == block.count, case .success(let header) = block.withUnsafeBytes({ SegmentHeader.decode($0) }),
              header.segmentID == segmentID.next, header.firstLSN == expected else {
            fileSystem.close(nextFD)
            return false
        }
        fileSystem.close(fd)
        fd = nextFD
        path = nextPath
        segmentID = header.segmentID
        offset = SegmentHeader.blockBytes
        watermark = max(watermark, LSN(expected.rawValue - 1))
        return true
    }
}
