import Foundation
import Testing
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct ReclamationTests {
    /// One unacked message among many acked ones must not pin the log: copy-forward moves it, and the disk
    /// stays within a few segments; after a restart the stuck message is still there, redelivered.
    @Test func oneStuckMessageDoesNotPinTheLog() async throws {
        let dir = TemporaryDirectory()
        let segment = 128 << 10
        var options = testOptions(segmentBytes: segment)
        options.log.compression = .none
        var store = try await QueueStore.open(directory: dir.path, options: options)
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("stuck"))
        let holder = try store.consume(queue: "q", prefetch: 1)
        let stuck = try await take(1, from: holder)[0]
        #expect(stuck.text == "stuck")
        let p = store.publisher()
        let worker = try store.consume(queue: "q", prefetch: 500)
        let body = Array(repeating: UInt8(ascii: "x"), count: 200)
        var iterator = worker.deliveries.makeAsyncIterator()
        var maxSegments = 0
        for round in 0..<40 {
            for _ in 0..<500 { try await p.publish(to: "q", Message(body: body)) }
            var last: DeliveryTag?
            for _ in 0..<500 { last = try #require(try await iterator.next()).tag }
            try await worker.ack(try #require(last), multiple: true)
            if round % 5 == 4 {
                try await store.reclaim()
                maxSegments = max(maxSegments, store.diskUsage.segments)
            }
        }
        let usage = store.diskUsage
        // 20,000 messages of 200 bytes went through (about 4.5 MB of log): all that stays is a few segments.
        #expect(usage.liveBytes == 5)
        #expect(maxSegments <= 12, "segments kept: \(maxSegments)")
        #expect(usage.firstLSN.rawValue > stuck.messageID.rawValue, "the stuck message's first copy is reclaimed")
        // Truncation keeps freed segments as spares: they are on disk, and the usage counts them.
        let held = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").filter { $0.hasSuffix(".prep") }
        #expect(usage.preparedSegments >= 1 && usage.preparedSegments == held.count, "\(held)")
        #expect(usage.logBytes == (usage.segments + usage.preparedSegments) * options.log.segmentBytes)
        try store.close()

        store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        #expect(store.queueInfo("q")?.ready == 1)
        let again = try store.consume(queue: "q")
        let d = try await take(1, from: again)[0]
        #expect(d.text == "stuck" && d.messageID == stuck.messageID && d.redelivered)
    }
}
