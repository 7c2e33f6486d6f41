import LogFormat
import Testing
import WALSimulation

/// Builds a batch payload of `records` and encodes it into one frame.
func encodeFrame(_ records: [[UInt8]], compression: FrameHeader.Codec = .lz4, firstLSN: UInt64 = 10,
                 segmentID: UInt64 = 3, durableLSN: UInt64 = 9) -> (bytes: [UInt8], header: FrameHeader) {
    var payload: [UInt8] = []
    for r in records { r.withUnsafeBytes { BatchPayload.append($0, to: &payload) } }
    var out = [UInt8](repeating: 0xEE, count: FrameEncoder.scratchBytesMax(payloadBytes: payload.count))
    let header = payload.withUnsafeBytes { p in
        out.withUnsafeMutableBytes { o in
            FrameEncoder.encode(payload: p, recordCount: records.count, segmentID: SegmentID(segmentID),
                                firstLSN: LSN(firstLSN), durableLSN: LSN(durableLSN), leaderEpoch: 7,
                                compression: compression, into: o)
        }
    }
    return (Array(out[0..<header.frameBytes]), header)
}

func decodeRecords(_ frame: [UInt8]) throws -> (FrameHeader, [[UInt8]]) {
    let check = frame.withUnsafeBytes { FrameHeader.check($0, storedBytesMax: frame.count) }
    guard case .intact(let header) = check else {
        Issue.record("frame not intact: \(check)")
        throw BatchDefect.recordFramingMismatch
    }
    var scratch: [UInt8] = []
    let size = try frame.withUnsafeBytes { f in
        try BatchPayload.decode(frame: f, header: header, uncompressedBytesMax: 1 << 24, into: &scratch)
    }
    var records: [[UInt8]] = []
    scratch.withUnsafeBytes { s in
        BatchPayload.forEachRecord(UnsafeRawBufferPointer(rebasing: s[0..<size])) { records.append(Array($0)) }
    }
    return (header, records)
}

@Suite(.timeLimit(.minutes(10))) struct FrameTests {
    let compressible = (0..<64).map { i in Array("{\"id\":\(i),\"event\":\"click\",\"text\":\"\(String(repeating: "banner video ", count: 70))\"}".utf8) }
    let incompressible: [[UInt8]] = {
        var rng = SplitMix64(seed: testSeed("FrameTests"))
        return (0..<16).map { _ in (0..<1024).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    }()

    @Test func compressiblePayloadRoundTripsThroughLZ4AndShrinks() throws {
        let (bytes, header) = encodeFrame(compressible)
        #expect(header.codec == .lz4)
        #expect(Int(header.storedBytes) * 2 < Int(header.uncompressedBytes))
        #expect(bytes.count % 8 == 0)
        let (decoded, records) = try decodeRecords(bytes)
        #expect(decoded == header)
        #expect(records == compressible)
        #expect(decoded.firstLSN == LSN(10) && decoded.endLSN == LSN(74) && decoded.durableLSN == LSN(9))
        #expect(decoded.segmentID == SegmentID(3) && decoded.leaderEpoch == 7)
    }

    @Test func incompressiblePayloadIsStoredRaw() throws {
        let (bytes, header) = encodeFrame(incompressible)
        #expect(header.codec == .none)
        #expect(Int(header.storedBytes) == 16 * (1024 + 4))
        #expect(try decodeRecords(bytes).1 == incompressible)
    }

    @Test func uncompressedCodecRoundTrips() throws {
        let (bytes, header) = encodeFrame(compressible, compression: .none)
        #expect(header.codec == .none)
        #expect(try decodeRecords(bytes).1 == compressible)
    }

    @Test func emptyRecordsAndSingleLargeRecordRoundTrip() throws {
        let records: [[UInt8]] = [[], [1], [], Array(repeating: 42, count: 1 << 20)]
        #expect(try decodeRecords(encodeFrame(records).bytes).1 == records)
        #expect(try decodeRecords(encodeFrame([Array(repeating: 7, count: 3)], compression: .none).bytes).1 == [[7, 7, 7]])
    }

    @Test func frameBoundIsNeverExceeded() {
        for records in [compressible, incompressible, [[UInt8]](repeating: [], count: 3)] {
            let (bytes, _) = encodeFrame(records)
            let payloadBytes = records.reduce(0) { $0 + $1.count + 4 }
            #expect(bytes.count <= FrameEncoder.frameBytesMax(payloadBytes: payloadBytes))
        }
    }

    @Test func everyFlippedByteIsDetected() {
        let (bytes, _) = encodeFrame(Array(compressible.prefix(4)))
        let covered = bytes.count - (bytes.count - (56 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) })))
        for i in 0..<covered {
            var damaged = bytes
            damaged[i] ^= 0x40
            let check = damaged.withUnsafeBytes { FrameHeader.check($0, storedBytesMax: damaged.count) }
            guard case .defective = check else {
                Issue.record("flip at byte \(i) not detected: \(check)")
                return
            }
        }
    }

    @Test func everyTruncationIsDetected() {
        let (bytes, _) = encodeFrame(Array(compressible.prefix(4)))
        let stored = 56 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) })
        for cut in 1..<stored {
            let check = Array(bytes[0..<cut]).withUnsafeBytes { FrameHeader.check($0, storedBytesMax: 1 << 20) }
            if case .intact = check { Issue.record("truncation at \(cut) passed as intact") }
        }
    }

    @Test func zerosAreTheEndOfData() {
        let zeros = [UInt8](repeating: 0, count: 100)
        #expect(zeros.withUnsafeBytes { FrameHeader.check($0, storedBytesMax: 44) } == .zeros)
        #expect(Array(zeros[0..<10]).withUnsafeBytes { FrameHeader.check($0, storedBytesMax: 44) } == .zeros)
    }

    @Test func absurdLengthIsRejectedBeforeItIsUsed() {
        var (bytes, _) = encodeFrame(Array(compressible.prefix(2)))
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32.max, toByteOffset: 12, as: UInt32.self) }
        #expect(bytes.withUnsafeBytes { FrameHeader.check($0, storedBytesMax: 1 << 20) } == .defective(.lengthOutOfBounds))
    }

    @Test func corruptLZ4WithRecomputedChecksumIsABatchDefect() throws {
        var (bytes, header) = encodeFrame(compressible)
        #expect(header.codec == .lz4)
        bytes[60] ^= 0xFF
        bytes[70] ^= 0x13
        let end = 56 + Int(header.storedBytes)
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4..<end])) }
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: 0, as: UInt32.self) }
        #expect(throws: BatchDefect.self) { _ = try decodeRecords(bytes) }
    }

    @Test func recordFramingMustMatchTheCount() {
        var payload: [UInt8] = []
        [UInt8](repeating: 1, count: 5).withUnsafeBytes { BatchPayload.append($0, to: &payload) }
        #expect(throws: BatchDefect.recordFramingMismatch) {
            try payload.withUnsafeBytes { try BatchPayload.validate($0, recordCount: 2) }
        }
        #expect(throws: BatchDefect.recordFramingMismatch) {
            try Array(payload.dropLast()).withUnsafeBytes { try BatchPayload.validate($0, recordCount: 1) }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct SegmentHeaderTests {
    @Test func roundTripsAndDetectsDamage() {
        let header = SegmentHeader(segmentID: SegmentID(5), firstLSN: LSN(1234), logIdentity: .random(), segmentBytes: 1 << 26)
        let bytes = header.encoded()
        #expect(bytes.withUnsafeBytes { SegmentHeader.decode($0) } == .success(header))
        for i in 0..<bytes.count {
            var damaged = bytes
            damaged[i] ^= 0x01
            if case .success = damaged.withUnsafeBytes({ SegmentHeader.decode($0) }) {
                Issue.record("flip at \(i) not detected")
            }
        }
        #expect([UInt8](repeating: 0, count: 64).withUnsafeBytes { SegmentHeader.decode($0) } == .failure(.allZero))
    }

    @Test func identityIsAVersion4UUID() {
        let text = LogIdentity.random().description
        #expect(text.count == 36)
        #expect(Array(text)[14] == "4")
    }
}
