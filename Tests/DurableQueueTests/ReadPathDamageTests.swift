import Foundation
import LogFormat
import Testing
import DurableLog
@testable import DurableQueue

/// The store never serves a damaged body: a stream record whose frame is damaged after the store opened is
/// refused with `.corruption` naming the log's file and offset, for every byte of the frame.
@Suite(.timeLimit(.minutes(2))) struct ReadPathDamageTests {
    @Test func everyFlippedByteOfAStreamRecordsFrameIsRefused() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareStream("s")
        for i in 0..<4 { try await store.append(to: "s", text("record \(i) " + String(repeating: "z", count: 200))) }
        try store.close()
        store = try await QueueStore.open(directory: dir.path, options: testOptions())  // nothing cached
        defer { try? store.close() }
        var victim: (path: String, offset: Int, header: FrameHeader)?
        var seen = 0
        try LogInspector.forEachRecord(directory: dir.path + "/wal") { _, record, header, path, offset in
            if StoreRecordDescription.describe(record)?.hasPrefix("append to stream") == true {
                if seen == 2 { victim = (path, offset, header) }
                seen += 1
            }
            return victim == nil
        }
        let frame = try #require(victim)
        #expect(frame.header.recordCount == 1)
        let handle = try #require(FileHandle(forUpdatingAtPath: frame.path))
        defer { try? handle.close() }
        for i in 0..<(FrameHeader.encodedBytes + Int(frame.header.storedBytes)) {
            let at = UInt64(frame.offset + i)
            try handle.seek(toOffset: at)
            let original = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: at)
            try handle.write(contentsOf: [original ^ 0x80])
            let e = expectQueueError(.corruption, "byte \(i)") { _ = try store.read(stream: "s", from: 2, limit: 1) }
            #expect(e?.code == .corruption && e?.log?.offset == frame.offset && e?.log?.path == frame.path, "byte \(i)")
            try handle.seek(toOffset: at)
            try handle.write(contentsOf: [original])
        }
        #expect(try store.read(stream: "s", from: 2, limit: 1).first?.offset == 2)
    }
}
