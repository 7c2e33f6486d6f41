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

    /// Copy-forward empties the oldest covered segments, oldest first, and stops at the first one that is not
    /// mostly dead: a message stuck among dead ones before a run of live (ready) messages is moved, one stuck
    /// after that run is not, and most of the run stays where it is (only those sharing a mostly dead segment
    /// move).
    @Test func copyForwardStopsAtTheFirstSegmentThatIsMostlyLive() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions(segmentBytes: 128 << 10)
        options.log.compression = .none
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        for name in ["stuck", "kept", "churn"] { try await store.declareQueue(name) }
        let body = Array(repeating: UInt8(ascii: "x"), count: 200)
        let p = store.publisher()
        let churn = try store.consume(queue: "churn", prefetch: 1_000)
        var deliveries = churn.deliveries.makeAsyncIterator()
        /// `n` messages published to "churn" and acked, 500 at a time (within the prefetch): log that is all dead.
        func churnThrough(_ n: Int) async throws {
            for _ in 0..<(n / 500) {
                for _ in 0..<500 { try await p.publish(to: "churn", Message(body: body)) }
                var last: DeliveryTag?
                for _ in 0..<500 { last = try #require(try await deliveries.next()).tag }
                try await churn.ack(try #require(last), multiple: true)
            }
        }
        try await store.publish(to: "stuck", text("first"))
        try await churnThrough(1_000)  // about two segments
        for _ in 0..<1_000 { try await p.publish(to: "kept", Message(body: body)) }  // about two more, live
        #expect(try await p.waitForConfirms())
        try await store.publish(to: "stuck", text("second"))
        try await churnThrough(2_000)  // closes the segments above, so that the checkpoint covers them
        try await store.reclaim()

        let (stuck, kept) = store.core.withLock { c in
            (Array(c.state.queues[c.state.queueIDs["stuck"]!]!.ready), Array(c.state.queues[c.state.queueIDs["kept"]!]!.ready))
        }
        #expect(stuck.count == 2 && kept.count == 1_000)
        #expect(stuck.first.map { $0.bodyLSN > $0.id } == true, "the first stuck message was copied forward")
        #expect(stuck.last.map { $0.bodyLSN == $0.id } == true, "the second, behind the live run, was not")
        let moved = kept.filter { $0.bodyLSN != $0.id }.count
        #expect(moved < 500, "\(moved) of the live run moved")
        // Moved or not, every message reads back as published.
        let readers = try store.consume(queue: "stuck", prefetch: 2)
        #expect(try await take(2, from: readers).map(\.text) == ["first", "second"])
    }
}
