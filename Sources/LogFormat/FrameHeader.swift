/// The plain, checksummed header in front of every batch frame. Byte layout in DESIGN.md ("Frame").
///
/// One CRC32C covers header bytes 4..<56 and the stored payload, so a frame can be verified without
/// decompressing it. Frames start at 8-byte aligned offsets; the bytes between a frame's end and the next
/// 8-byte boundary are zero and are not covered by the checksum.
public struct FrameHeader: Equatable, Sendable {
    /// The frame magic in bytes 4..<8 ("QWRF" as little-endian bytes); anything else there is `.badMagic`.
    public static let magic: UInt32 = 0x4652_5751          // "QWRF"
    /// The frame format version this code writes and reads (byte 8); a frame of another is `.badVersion`.
    public static let formatVersion: UInt8 = 1
    /// Size of the encoded header in bytes, its CRC32C in bytes 0..<4 first; the stored payload follows it.
    public static let encodedBytes = 56

    /// How a frame's payload is stored (byte 9).
    public enum Codec: UInt8, Sendable {
        /// Raw: the stored payload is the batch payload itself (`storedBytes` equals `uncompressedBytes`).
        case none = 0
        /// One LZ4 block that decompresses to `uncompressedBytes`; the encoder uses it only when it is smaller.
        case lz4 = 1
    }
    /// What a frame stands for (byte 10).
    public enum Kind: UInt8, Sendable {
        /// A batch of records.
        case records = 0
        /// Written by a clean close: no records; says that everything before it is durable.
        case seal = 1
        /// Written by salvage in place of a damaged span: `recordCount` records whose bytes are gone. The
        /// payload is zeros filling the span (codec none); the damaged bytes were moved to quarantine first.
        case lost = 2
    }

    /// How the payload is stored.
    public var codec: Codec
    /// What the frame stands for.
    public var kind: Kind
    /// Payload bytes as stored after the header (LZ4 or raw), padding excluded: what the checksum covers
    /// beyond the header.
    public var storedBytes: UInt32
    /// Payload bytes before compression: each record with its 4-byte length (for a `.lost` frame, the zero
    /// filling; 0 for a seal).
    public var uncompressedBytes: UInt32
    /// Records in the frame: 0 for a seal; for a `.lost` frame, the records whose bytes are gone.
    public var recordCount: UInt32
    /// The segment the frame was written into. A frame whose id is not its file's is left over from an
    /// earlier use of the file.
    public var segmentID: SegmentID
    /// The LSN of the frame's first record (for a seal, the LSN the next append gets).
    public var firstLSN: LSN
    /// The highest LSN that was durable (committed) when this frame was written. A damaged frame whose
    /// records are at or below this watermark in any later intact frame held confirmed data: corruption.
    public var durableLSN: LSN
    /// The leader epoch that wrote the frame (0 on a single node); kept for replication.
    public var leaderEpoch: UInt64

    /// A header of these fields. `FrameEncoder` makes the headers the log writes; `check` returns the ones it
    /// reads, once verified.
    public init(codec: Codec, kind: Kind, storedBytes: UInt32, uncompressedBytes: UInt32, recordCount: UInt32,
                segmentID: SegmentID, firstLSN: LSN, durableLSN: LSN, leaderEpoch: UInt64) {
        self.codec = codec
        self.kind = kind
        self.storedBytes = storedBytes
        self.uncompressedBytes = uncompressedBytes
        self.recordCount = recordCount
        self.segmentID = segmentID
        self.firstLSN = firstLSN
        self.durableLSN = durableLSN
        self.leaderEpoch = leaderEpoch
    }

    /// The LSN after this frame's last record.
    public var endLSN: LSN { firstLSN + UInt64(recordCount) }
    /// Header, payload and padding to the next 8-byte boundary.
    public var frameBytes: Int { alignUp8(Self.encodedBytes + Int(storedBytes)) }

    /// Writes bytes 4..<56 (everything but the checksum).
    func encodeFields(into out: UnsafeMutableRawBufferPointer) {
        out.storeLE(Self.magic, at: 4)
        out.storeBytes(of: Self.formatVersion, toByteOffset: 8, as: UInt8.self)
        out.storeBytes(of: codec.rawValue, toByteOffset: 9, as: UInt8.self)
        out.storeBytes(of: kind.rawValue, toByteOffset: 10, as: UInt8.self)
        out.storeBytes(of: UInt8(0), toByteOffset: 11, as: UInt8.self)
        out.storeLE(storedBytes, at: 12)
        out.storeLE(uncompressedBytes, at: 16)
        out.storeLE(recordCount, at: 20)
        out.storeLE(segmentID.rawValue, at: 24)
        out.storeLE(firstLSN.rawValue, at: 32)
        out.storeLE(durableLSN.rawValue, at: 40)
        out.storeLE(leaderEpoch, at: 48)
    }
}

/// Why the bytes at a frame position are not an intact frame.
public enum FrameDefect: Equatable, Sendable, CustomStringConvertible {
    /// The buffer ends before the header does.
    case truncatedHeader
    /// Bytes 4..<8 are not `FrameHeader.magic`: not a frame header at all.
    case badMagic
    /// A frame format version this code does not read (the version found).
    case badVersion(UInt8)
    /// The codec or kind byte holds a value this version does not know.
    case badCodecOrKind
    /// The length fields point past what the segment can hold, or contradict each other.
    case lengthOutOfBounds
    /// The buffer ends before the payload the header announces.
    case truncatedPayload
    /// The CRC32C in bytes 0..<4 does not match header bytes 4..<56 and the stored payload.
    case checksumMismatch

    public var description: String {
        switch self {
        case .truncatedHeader: return "frame header cut short"
        case .badMagic: return "bad frame magic"
        case .badVersion(let v): return "unknown frame format version \(v)"
        case .badCodecOrKind: return "unknown codec or frame kind"
        case .lengthOutOfBounds: return "frame length fields out of bounds"
        case .truncatedPayload: return "frame payload cut short"
        case .checksumMismatch: return "frame checksum mismatch"
        }
    }
}

/// What lies at one frame position.
public enum FrameCheck: Equatable, Sendable {
    /// An intact frame whose checksum verified.
    case intact(FrameHeader)
    /// An all-zero header: the preallocated, never written end of a segment.
    case zeros
    /// Bytes that are not an intact frame, with the first check that failed.
    case defective(FrameDefect)
}

extension FrameHeader {
    /// Verifies the frame at the start of `bytes`: magic, version, bounded lengths, then the checksum over
    /// header and stored payload. No field is returned before the checksum passed; a length is only used
    /// to bound the checksum, never to allocate.
    ///
    /// - Parameters:
    ///   - bytes: the bytes from the frame's position on (header, then the stored payload when verifying).
    ///   - storedBytesMax: the largest stored payload the caller allows (bounded by the space left).
    ///   - verifyingChecksum: false checks the header's fields only (the payload need not be in `bytes`): for
    ///     indexing frames that an earlier pass verified; readers verify each frame again.
    public static func check(_ bytes: UnsafeRawBufferPointer, storedBytesMax: Int,
                             verifyingChecksum: Bool = true) -> FrameCheck {
        guard bytes.count >= encodedBytes else {
            return bytes.allSatisfy({ $0 == 0 }) ? .zeros : .defective(.truncatedHeader)
        }
        let head = UnsafeRawBufferPointer(rebasing: bytes[0..<encodedBytes])
        if head.loadLE(0, as: UInt64.self) == 0 && head.loadLE(4, as: UInt32.self) == 0
            && head.allSatisfy({ $0 == 0 }) {
            return .zeros
        }
        guard head.loadLE(4, as: UInt32.self) == magic else { return .defective(.badMagic) }
        let version = head[8]
        guard version == formatVersion else { return .defective(.badVersion(version)) }
        guard let codec = Codec(rawValue: head[9]), let kind = Kind(rawValue: head[10]) else {
            return .defective(.badCodecOrKind)
        }
        let stored = head.loadLE(12, as: UInt32.self)
        let uncompressed = head.loadLE(16, as: UInt32.self)
        guard Int(stored) <= storedBytesMax, codec != .none || stored == uncompressed else {
            return .defective(.lengthOutOfBounds)
        }
        if verifyingChecksum {
            guard bytes.count >= encodedBytes + Int(stored) else { return .defective(.truncatedPayload) }
            let covered = UnsafeRawBufferPointer(rebasing: bytes[4..<(encodedBytes + Int(stored))])
            guard CRC32C.checksum(covered) == head.loadLE(0, as: UInt32.self) else {
                return .defective(.checksumMismatch)
            }
        }
        return .intact(FrameHeader(
            codec: codec, kind: kind, storedBytes: stored, uncompressedBytes: uncompressed,
            recordCount: head.loadLE(20, as: UInt32.self),
            segmentID: SegmentID(head.loadLE(24, as: UInt64.self)),
            firstLSN: LSN(head.loadLE(32, as: UInt64.self)),
            durableLSN: LSN(head.loadLE(40, as: UInt64.self)),
            leaderEpoch: head.loadLE(48, as: UInt64.self)))
    }
}
