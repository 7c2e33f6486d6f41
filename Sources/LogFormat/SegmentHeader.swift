/// The header at the start of every segment file. Byte layout in DESIGN.md ("Segment header").
///
/// The header occupies the whole first 4 KiB block of the file so that a torn write of the first frames can
/// never damage it; frames start at `SegmentHeader.blockBytes`.
public struct SegmentHeader: Equatable, Sendable {
    /// The segment magic in bytes 4..<8; anything else there is `.badMagic`.
    public static let magic: UInt32 = 0x4753_5751        // "QWSG" read as little-endian bytes
    /// The segment header format version this code writes and reads (bytes 8..<10); another is `.badVersion`.
    public static let formatVersion: UInt16 = 1
    /// Size of the encoded header in bytes, its CRC32C (of bytes 4..<64) in bytes 0..<4 first.
    public static let encodedBytes = 64
    /// Bytes the header reserves at the start of a segment file (also recorded in the header): the first
    /// frame starts at this offset.
    public static let blockBytes = 4096

    /// The segment's sequence number in its log, repeated in each of its frame headers.
    public var segmentID: SegmentID
    /// The LSN of the segment's first record (also the number in its file name).
    public var firstLSN: LSN
    /// The log the segment belongs to: recovery refuses a segment of another log.
    public var logIdentity: LogIdentity
    /// The segment size of the writer that activated the segment (its `LogOptions.segmentBytes`), for
    /// information: recovery goes by the file's actual size.
    public var segmentBytes: UInt64

    /// A header of these fields, for `encode(into:)`; `decode` reads one back.
    public init(segmentID: SegmentID, firstLSN: LSN, logIdentity: LogIdentity, segmentBytes: UInt64) {
        self.segmentID = segmentID
        self.firstLSN = firstLSN
        self.logIdentity = logIdentity
        self.segmentBytes = segmentBytes
    }

    /// Writes the 64 encoded bytes at the start of `out`.
    public func encode(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.encodedBytes)
        out.storeLE(Self.magic, at: 4)
        out.storeLE(Self.formatVersion, at: 8)
        out.storeLE(UInt16(Self.blockBytes), at: 10)
        out.storeLE(UInt32(0), at: 12)
        out.storeLE(segmentID.rawValue, at: 16)
        out.storeLE(firstLSN.rawValue, at: 24)
        out.storeLE(logIdentity.high, at: 32)
        out.storeLE(logIdentity.low, at: 40)
        out.storeLE(segmentBytes, at: 48)
        out.storeLE(UInt64(0), at: 56)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[4..<Self.encodedBytes]))
        out.storeLE(crc, at: 0)
    }

    /// The `encodedBytes` encoded bytes, checksum included, as `encode(into:)` writes them.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.encodedBytes)
        bytes.withUnsafeMutableBytes { encode(into: $0) }
        return bytes
    }

    /// Why `decode` refused a segment header.
    public enum Defect: Error, Equatable, Sendable {
        /// `truncated`: fewer than `encodedBytes` bytes; `allZero`: all of them zero (no header was written
        /// there); `badMagic`: bytes 4..<8 are not `magic`; `checksumMismatch`: the CRC32C in bytes 0..<4 does
        /// not match bytes 4..<64; `badVersion`: an intact header of another format version (the one found).
        case truncated, allZero, badMagic, badVersion(UInt16), checksumMismatch
    }

    /// Decodes and verifies a header; never trusts a field before the checksum has passed.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<SegmentHeader, Defect> {
        guard bytes.count >= encodedBytes else { return .failure(.truncated) }
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<encodedBytes])
        if header.allSatisfy({ $0 == 0 }) { return .failure(.allZero) }
        guard header.loadLE(4, as: UInt32.self) == magic else { return .failure(.badMagic) }
        let stored = header.loadLE(0, as: UInt32.self)
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: header[4...])) == stored else {
            return .failure(.checksumMismatch)
        }
        let version = header.loadLE(8, as: UInt16.self)
        guard version == formatVersion else { return .failure(.badVersion(version)) }
        return .success(SegmentHeader(
            segmentID: SegmentID(header.loadLE(16, as: UInt64.self)),
            firstLSN: LSN(header.loadLE(24, as: UInt64.self)),
            logIdentity: LogIdentity(high: header.loadLE(32, as: UInt64.self), low: header.loadLE(40, as: UInt64.self)),
            segmentBytes: header.loadLE(48, as: UInt64.self)))
    }
}
