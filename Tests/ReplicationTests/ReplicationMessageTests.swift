import DurableLog
import LogFormat
import Testing
@testable import Replication

@Suite struct ReplicationMessageTests {
    static let samples: [ReplicationMessage] = [
        .hello(.init(log: LogIdentity(high: 0x0102_0304_0506_0708, low: 0x1112_1314_1516_1718), member: "alpha",
                     incarnation: 0xFEDC_BA98_7654_3210, lastEpoch: 7, end: LSN(1234))),
        .hello(.init(log: LogIdentity(high: 1, low: 2), member: "ß-ünïcode", incarnation: 1, lastEpoch: nil, end: .first)),
        .epochEnd(.init(epoch: 3, end: LSN(99))),
        .epochEnd(nil),
        .follow(from: LSN(42)),
        .frames(ShippedFrames(segmentID: SegmentID(9), offset: 4096 + 64, bytes: Array(0..<200).map { UInt8($0) }),
                committed: LSN(77)),
        .durable(through: LSN(5000)),
        .refuse(.staleEpoch, "epoch 3 is older than 4"),
        .refuse(.logFailed, ""),
        .forward(id: 7, record: Array("a forwarded write".utf8)),
        .forward(id: .max, record: []),
        .forwarded(id: 7, .committed(LSN(1_234))),
        .forwarded(id: 8, .failed(.notEnoughReplicas, "the in-sync set is below minInsyncReplicas")),
        .forwarded(id: 9, .failed(.indeterminate, "")),
        .request(id: 10, body: Array("a store operation".utf8)),
        .request(id: .max, body: []),
        .reply(id: 10, body: [0, 1, 2, 3]),
    ]

    @Test func everyMessageSurvivesARoundTripAndAStreamOfThemDecodesInOrder() throws {
        var stream: [UInt8] = []
        for message in Self.samples {
            let bytes = message.encoded
            let decoded = try bytes.withUnsafeBytes { try ReplicationMessage.decode($0) }
            #expect(decoded?.0 == message)
            #expect(decoded?.1 == bytes.count)
            message.encode(into: &stream)
        }
        var offset = 0
        var seen: [ReplicationMessage] = []
        while let (message, used) = try stream.withUnsafeBytes({ try ReplicationMessage.decode(UnsafeRawBufferPointer(rebasing: $0[offset...])) }) {
            seen.append(message)
            offset += used
        }
        #expect(seen == Self.samples)
        #expect(offset == stream.count)
    }

    @Test func aPartialMessageWaitsForTheRest() throws {
        for message in Self.samples {
            let bytes = message.encoded
            for cut in 0..<bytes.count {
                #expect(try bytes.withUnsafeBytes { try ReplicationMessage.decode(UnsafeRawBufferPointer(rebasing: $0[0..<cut])) } == nil)
            }
        }
    }

    @Test func everyFlippedBitIsRefusedNeverDecodedAsAnotherMessage() {
        for message in Self.samples {
            let bytes = message.encoded
            for index in 0..<bytes.count {
                for bit in [0, 3, 7] {
                    var damaged = bytes
                    damaged[index] ^= UInt8(1 << bit)
                    do {
                        // A flipped length bit can only make the message look longer (then it waits for the rest),
                        // shorter, or absurd; every other flip fails the checksum.
                        if let (decoded, _) = try damaged.withUnsafeBytes({ try ReplicationMessage.decode($0) }) {
                            Issue.record("byte \(index) bit \(bit) of \(message) decoded as \(decoded)")
                        }
                    } catch {}
                }
            }
        }
    }

    @Test func anAbsurdLengthIsRefusedBeforeWaitingForIt() {
        var bytes: [UInt8] = [0xFF, 0xFF, 0xFF, 0x7F, 1]
        let absurd = #expect(throws: ReplicationWireError.self) { _ = try bytes.withUnsafeBytes { try ReplicationMessage.decode($0) } }
        #expect(absurd?.reason == "a length of \(0x7FFF_FFFF) bytes")
        bytes = [2, 0, 0, 0, 1, 0]
        let tooShort = #expect(throws: ReplicationWireError.self) { _ = try bytes.withUnsafeBytes { try ReplicationMessage.decode($0) } }
        #expect(tooShort?.reason == "a length of 2 bytes", "shorter than a type byte and a checksum")
    }
}
