import LogFormat
import Synchronization

/// Reads records back: finds the frame through the catalog, reads it with one `pread`, verifies its
/// checksum and record framing before using a byte of it, then decompresses. Safe beside the writer:
/// it only serves records at or below the durable watermark.
final class LogReader: Sendable {
    private let fileSystem: any FileSystem
    private let catalog: SegmentCatalog
    private let descriptors = Mutex<[String: Int32]>([:])

    init(fileSystem: any FileSystem, catalog: SegmentCatalog) {
        self.fileSystem = fileSystem
        self.catalog = catalog
    }

    /// Calls `body` with each record from `start` through `end` in LSN order until it returns false. A
    /// `.lost` frame (records salvage took out) goes to `onLost` and is skipped, or without it throws
    /// `.recordsLost`.
    func forEachRecord(from start: LSN, through end: LSN, onLost: ((ClosedRange<UInt64>) -> Void)? = nil,
                       _ body: (LSN, UnsafeRawBufferPointer) throws -> Bool) throws {
        try forEachRecordWithFrame(from: start, through: end, onLost: onLost) { lsn, record, _, _, _ in
            try body(lsn, record)
        }
    }

    /// The same, with each record's frame header and the frame's file and offset (for inspection tools).
    func forEachRecordWithFrame(
        from start: LSN, through end: LSN, onLost: ((ClosedRange<UInt64>) -> Void)? = nil,
        _ body: (LSN, UnsafeRawBufferPointer, FrameHeader, String, Int) throws -> Bool
    ) throws {
        guard start <= end else { return }
        var frame: [UInt8] = []
        var payload: [UInt8] = []
        // Binary search for the segment and frame holding `start`, then walk forward.
        let segments = catalog.snapshot
        let firstSegment = SegmentCatalog.lastIndex(in: segments) { $0.firstLSN <= start } ?? 0
        for segment in segments[firstSegment...] where segment.endLSN > start && segment.firstLSN <= end {
            let frames = try catalog.frames(of: segment)
            let firstFrame = SegmentCatalog.lastIndex(in: frames) { $0.firstLSN <= start.rawValue } ?? 0
            for location in frames[firstFrame...] {
                let frameEnd = location.firstLSN + UInt64(location.recordCount)
                if frameEnd <= start.rawValue { continue }
                if location.firstLSN > end.rawValue { return }
                if location.lost {
                    let lost = location.firstLSN...(frameEnd - 1)
                    guard let onLost else { throw Self.lost(lost, path: segment.path, offset: Int(location.offset)) }
                    onLost(lost)
                    continue
                }
                let fd = try descriptor(segment.path)
                let header = try FrameReading.read(fd, path: segment.path, location: location, into: &frame,
                                                   fileSystem: fileSystem)
                let size: Int
                switch FrameReading.decode(frame, header: header, into: &payload) {
                case .success(let n): size = n
                case .failure(let defect):
                    throw FrameReading.corruption("a payload that does not decode (\(defect))", path: segment.path,
                                                  location: location)
                }
                var lsn = LSN(location.firstLSN)
                var keepGoing = true
                try payload.withUnsafeBytes { bytes in
                    try BatchPayload.forEachRecord(UnsafeRawBufferPointer(rebasing: bytes[0..<size])) { record in
                        defer { lsn = lsn.next }
                        guard keepGoing, lsn >= start, lsn <= end else { return }
                        keepGoing = try body(lsn, record, header, segment.path, Int(location.offset))
                    }
                }
                if !keepGoing { return }
            }
        }
    }

    /// `count` bytes of the file at `path` from `offset` as they are (a leader reading frames to ship).
    func readBytes(path: String, at offset: Int, count: Int) throws(WALError) -> [UInt8] {
        let fd = try descriptor(path)
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try typedWAL { try bytes.withUnsafeMutableBytes { b in
            try fileSystem.read(fd, into: b, at: offset, path: path)
        } }
        guard n == count else {
            throw WALError(.corruption, "the segment ends \(count - n) bytes before frames the log wrote",
                           path: path, offset: offset + n)
        }
        return bytes
    }

    static func lost(_ lsns: ClosedRange<UInt64>, path: String, offset: Int) -> WALError {
        WALError(.recordsLost, "records \(lsns.lowerBound)...\(lsns.upperBound) were lost to damage; salvage took "
                 + "their bytes out of the log (see its quarantine directory)", path: path, offset: offset, lsnRange: lsns)
    }

    private func descriptor(_ path: String) throws(WALError) -> Int32 {
        if let fd = descriptors.withLock({ $0[path] }) { return fd }
        let fd = try fileSystem.open(path, writable: false, create: false)
        let winner = descriptors.withLock { table -> Int32 in
            if let existing = table[path] { return existing }
            table[path] = fd
            return fd
        }
        if winner != fd { fileSystem.close(fd) }
        return winner
    }

    /// Closes the descriptors of removed segments (or all, when `paths` is nil).
    func forget(_ paths: [String]?) {
        let closing: [Int32] = descriptors.withLock { table in
            guard let paths else {
                defer { table.removeAll() }
                return Array(table.values)
            }
            return paths.compactMap { table.removeValue(forKey: $0) }
        }
        for fd in closing { fileSystem.close(fd) }
    }
}
