import LogFormat

/// Reading one frame back that recovery indexed: the single path by which the log's reader and the read-only
/// inspector (`walctl`) get at a frame's records, so the two can never disagree about what a frame holds.
enum FrameReading {
    /// Reads the frame at `location` into `frame` and checks it again (header, checksum, and that it is the
    /// frame the catalog says: its first LSN and record count). The file may have changed since recovery.
    /// - Throws: `.corruption` naming the file, offset and LSNs.
    static func read(_ fd: Int32, path: String, location: SegmentCatalog.FrameLocation, into frame: inout [UInt8],
                     fileSystem: any FileSystem) throws(WALError) -> FrameHeader {
        let size = Int(location.frameBytes)
        if frame.count < size { frame = [UInt8](repeating: 0, count: size) }
        let n = try typedWAL { try frame.withUnsafeMutableBytes { b in
            try fileSystem.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<size]),
                                at: Int(location.offset), path: path)
        } }
        let check = frame.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[0..<n]), storedBytesMax: size - FrameHeader.encodedBytes)
        }
        guard case .intact(let header) = check else {
            if case .defective(let defect) = check { throw corruption(defect.description, path: path, location: location) }
            throw corruption("zeros", path: path, location: location)
        }
        guard header.firstLSN.rawValue == location.firstLSN, header.recordCount == location.recordCount else {
            throw corruption("an intact frame for other records", path: path, location: location)
        }
        return header
    }

    /// Reads only the header of the frame at `location` (its fields checked, not its checksum: the payload is
    /// not read): for summaries of a log that recovery verified, such as `walctl info`.
    static func readHeader(_ fd: Int32, path: String, location: SegmentCatalog.FrameLocation,
                           fileSystem: any FileSystem) throws(WALError) -> FrameHeader {
        var head = [UInt8](repeating: 0, count: FrameHeader.encodedBytes)
        let n = try typedWAL { try head.withUnsafeMutableBytes { b in
            try fileSystem.read(fd, into: b, at: Int(location.offset), path: path)
        } }
        let check = head.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[0..<n]),
                              storedBytesMax: Int(location.frameBytes) - FrameHeader.encodedBytes, verifyingChecksum: false)
        }
        guard case .intact(let header) = check, header.firstLSN.rawValue == location.firstLSN else {
            throw corruption("a frame header that changed since it was verified", path: path, location: location)
        }
        return header
    }

    /// Decompresses a verified frame's payload into `payload` and checks its record framing; returns the
    /// payload's size.
    static func decode(_ frame: [UInt8], header: FrameHeader, into payload: inout [UInt8]) -> Result<Int, BatchDefect> {
        frame.withUnsafeBytes { bytes in
            Result { () throws(BatchDefect) in
                try BatchPayload.decode(frame: bytes, header: header, uncompressedBytesMax: Int(UInt32.max), into: &payload)
            }
        }
    }

    static func corruption(_ what: String, path: String, location: SegmentCatalog.FrameLocation) -> WALError {
        let lsnRange = location.firstLSN...(location.firstLSN + UInt64(max(location.recordCount, 1)) - 1)
        return WALError(.corruption, "\(what) in a frame of confirmed records; the bytes on disk changed after they "
                        + "were written. Stop using this log, run verify on it, and restore from a replica or backup",
                        path: path, offset: Int(location.offset), lsnRange: lsnRange)
    }
}
