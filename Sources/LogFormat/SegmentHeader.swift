/// The header at the start of every segment file. Byte layout in DESIGN.md ("Segment header").
///
/// The header occupies the whole first 4 KiB block of the file so that a torn write of the first frames can
/// never damage it; frames start at `SegmentHeader.blockBytes`.
public struct SegmentHeader: Equatable, Sendable {
    public static let magic: UInt32 = 0x4753_5751        // "QWSG" read as little-endian bytes
    public static let formatVersion: UInt16 = 1
    public static let encodedBytes = 64
    public static let blockBytes = 4096

    public var segmentID: SegmentID
    public var firstLSN: LSN
    public var logIdentity: LogIdentity
    public var segmentBytes: UInt64

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

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.encodedBytes)
        bytes.withUnsafeMutableBytes { encode(into: $0) }
        return bytes
    }

    public enum Defect: Error, Equatable, Sendable {
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
