import CLZ4

/// Encodes one batch of records into one frame: header, stored payload (LZ4 when it saves space, raw
/// otherwise), zero padding to 8 bytes. Works in caller-owned buffers: no allocation.
public enum FrameEncoder {
    /// Space the encoder may touch in `out` for a payload of `payloadBytes` (LZ4's worst case).
    public static func scratchBytesMax(payloadBytes: Int) -> Int {
        alignUp8(FrameHeader.encodedBytes + max(payloadBytes, Int(LZ4_compressBound(Int32(payloadBytes)))))
    }

    /// The most a frame of `payloadBytes` can occupy on disk (incompressible payloads are stored raw).
    public static func frameBytesMax(payloadBytes: Int) -> Int {
        alignUp8(FrameHeader.encodedBytes + payloadBytes)
    }

    /// Encodes a frame at the start of `out` and returns its header; the frame's size is `frameBytes`.
    /// `payload` is the batch payload: each record as a little-endian u32 length and its bytes.
    /// `out` must hold `scratchBytesMax(payloadBytes:)` bytes.
    public static func encode(
        payload: UnsafeRawBufferPointer, recordCount: Int, kind: FrameHeader.Kind = .records,
        segmentID: SegmentID, firstLSN: LSN, durableLSN: LSN, leaderEpoch: UInt64,
        compression: FrameHeader.Codec, into out: UnsafeMutableRawBufferPointer
    ) -> FrameHeader {
        precondition(out.count >= scratchBytesMax(payloadBytes: payload.count), "frame scratch too small")
        precondition(payload.count <= Int(UInt32.max) && recordCount <= Int(UInt32.max))
        let body = UnsafeMutableRawBufferPointer(rebasing: out[FrameHeader.encodedBytes...])
        var codec = FrameHeader.Codec.none
        var stored = payload.count
        if compression == .lz4, payload.count > 0 {
            let n = LZ4_compress_default(
                payload.baseAddress!.assumingMemoryBound(to: CChar.self),
                body.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(payload.count), Int32(body.count))
            if n > 0 && Int(n) < payload.count {
                codec = .lz4
                stored = Int(n)
            }
        }
        if codec == .none, payload.count > 0 {
            body.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        let header = FrameHeader(
            codec: codec, kind: kind, storedBytes: UInt32(stored), uncompressedBytes: UInt32(payload.count),
            recordCount: UInt32(recordCount), segmentID: segmentID, firstLSN: firstLSN,
            durableLSN: durableLSN, leaderEpoch: leaderEpoch)
        header.encodeFields(into: out)
        let end = FrameHeader.encodedBytes + stored
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[4..<end]))
        out.storeLE(crc, at: 0)
        for i in end..<header.frameBytes { out[i] = 0 }
        return header
    }
}

extension FrameEncoder {
    /// A `.lost` frame of exactly `frameBytes` bytes (a multiple of 8, at least a header) standing for
    /// `recordCount` records from `firstLSN` whose bytes were damaged: what salvage writes over the span.
    /// Its watermark claims nothing beyond its own first LSN.
    public static func encodeLost(recordCount: Int, segmentID: SegmentID, firstLSN: LSN, leaderEpoch: UInt64 = 0,
                                  frameBytes: Int) -> [UInt8] {
        precondition(frameBytes >= FrameHeader.encodedBytes && frameBytes % 8 == 0
                     && frameBytes - FrameHeader.encodedBytes <= Int(UInt32.max) && recordCount <= Int(UInt32.max))
        var out = [UInt8](repeating: 0, count: frameBytes)
        let stored = UInt32(frameBytes - FrameHeader.encodedBytes)
        let header = FrameHeader(codec: .none, kind: .lost, storedBytes: stored, uncompressedBytes: stored,
                                 recordCount: UInt32(recordCount), segmentID: segmentID, firstLSN: firstLSN,
                                 durableLSN: LSN(firstLSN.rawValue - 1), leaderEpoch: leaderEpoch)
        out.withUnsafeMutableBytes { b in
            header.encodeFields(into: b)
            b.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[4..<frameBytes])), at: 0)
        }
        return out
    }
}

/// Builds a batch payload: each record as a little-endian u32 length followed by its bytes.
public enum BatchPayload {
    /// Bytes of the little-endian `UInt32` length in front of each record in a payload.
    public static let lengthPrefixBytes = 4

    /// Appends one record to a payload under construction.
    @inlinable
    public static func append(_ record: UnsafeRawBufferPointer, to payload: inout [UInt8]) {
        precondition(record.count <= Int(UInt32.max))
        let length = UInt32(record.count).littleEndian
        withUnsafeBytes(of: length) { payload.append(contentsOf: $0) }
        payload.append(contentsOf: record)
    }

    /// Decodes a verified frame's payload into `scratch` and checks its record framing.
    /// Returns the number of payload bytes in `scratch`.
    ///
    /// - Throws: `BatchDefect` when the payload does not decompress to the announced size or its records
    ///   do not add up to the header's count and length; never allocates more than `uncompressedBytesMax`.
    public static func decode(
        frame: UnsafeRawBufferPointer, header: FrameHeader, uncompressedBytesMax: Int, into scratch: inout [UInt8]
    ) throws(BatchDefect) -> Int {
        let size = Int(header.uncompressedBytes)
        // LZ4 cannot expand a block more than 255-fold, so a larger announced size is a lie that must not
        // become an allocation.
        guard size <= uncompressedBytesMax,
              header.codec == .none || size <= 255 * Int(header.storedBytes) + 16 else { throw .uncompressedTooLarge }
        let stored = UnsafeRawBufferPointer(
            rebasing: frame[FrameHeader.encodedBytes..<(FrameHeader.encodedBytes + Int(header.storedBytes))])
        if scratch.count < size { scratch = [UInt8](repeating: 0, count: max(size, scratch.count * 2)) }
        let defect: BatchDefect? = scratch.withUnsafeMutableBytes { out in
            switch header.codec {
            case .none:
                guard stored.count == size else { return .decompressionFailed }
                if size > 0 { out.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: size) }
            case .lz4:
                guard size > 0, stored.count > 0 else { return .decompressionFailed }
                let n = LZ4_decompress_safe(
                    stored.baseAddress!.assumingMemoryBound(to: CChar.self),
                    out.baseAddress!.assumingMemoryBound(to: CChar.self),
                    Int32(stored.count), Int32(size))
                guard n == Int32(size) else { return .decompressionFailed }
            }
            do throws(BatchDefect) {
                try validate(UnsafeRawBufferPointer(rebasing: out[0..<size]), recordCount: Int(header.recordCount))
            } catch {
                return error
            }
            return nil
        }
        if let defect { throw defect }
        return size
    }

    /// Checks that `payload` holds exactly `recordCount` length-prefixed records and nothing else.
    public static func validate(_ payload: UnsafeRawBufferPointer, recordCount: Int) throws(BatchDefect) {
        var offset = 0
        var count = 0
        while offset < payload.count {
            guard payload.count - offset >= lengthPrefixBytes else { throw .recordFramingMismatch }
            let length = Int(payload.loadLE(offset, as: UInt32.self))
            offset += lengthPrefixBytes
            guard length <= payload.count - offset else { throw .recordFramingMismatch }
            offset += length
            count += 1
        }
        guard count == recordCount else { throw .recordFramingMismatch }
    }

    /// Calls `body` with each record of a validated payload, in order.
    @inlinable
    public static func forEachRecord(
        _ payload: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        var offset = 0
        while offset + lengthPrefixBytes <= payload.count {
            let length = Int(payload.loadLE(offset, as: UInt32.self))
            offset += lengthPrefixBytes
            try body(UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]))
            offset += length
        }
    }
}

/// Why a frame whose checksum verified still does not hold a well-formed batch.
public enum BatchDefect: Error, Equatable, Sendable {
    /// The header announces more uncompressed bytes than the caller allows (`uncompressedBytesMax`), or more
    /// than LZ4 can expand the stored bytes to; refused before anything is allocated.
    case uncompressedTooLarge
    /// The stored payload does not yield exactly `uncompressedBytes`: LZ4 failed or produced another size, or
    /// a raw payload's stored and uncompressed sizes differ.
    case decompressionFailed
    /// The decoded payload is not exactly `recordCount` length-prefixed records: a length prefix is cut short
    /// or runs past the end, or the number of records differs.
    case recordFramingMismatch
}
