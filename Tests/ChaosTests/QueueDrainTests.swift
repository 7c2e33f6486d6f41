import DurableQueue
import Foundation
import NodeWire
import Testing
@testable import queue_node

/// The final drain of a chaos campaign: bounded batches, each acked before it is returned, that together
/// take every message exactly once whatever the backlog.
@Suite struct QueueDrainTests {
    @Test func aBacklogLongerThanOneDrainComesOutInBoundedBatchesEachMessageOnce() async throws {
        let directory = NSTemporaryDirectory() + "queue-drain-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await QueueStore.open(directory: directory)
        try await store.declareQueue("q")
        let publisher = store.publisher()
        for i in 0..<1_300 { try await publisher.publish(to: "q", Message(body: Array("m\(i)".utf8))) }
        #expect(try await publisher.waitForConfirms())

        var batches: [[DrainedMessage]] = []
        repeat {
            batches.append(try await QueueDrain.take(from: store, queue: "q", limit: 500, idle: .milliseconds(200)))
        } while !batches.last!.isEmpty

        #expect(batches.map(\.count) == [500, 500, 300, 0])
        // Each message exactly once. Not in publish order across drains: a drain's ack frees its prefetch, so a
        // last checkout may be in flight when its consumer is cancelled; those messages go back to the front of
        // the queue, but the next drain's first checkout can be applied before they are back.
        let bodies = batches.joined().map(\.body)
        #expect(bodies.sorted() == (0..<1_300).map { "m\($0)" }.sorted())
        #expect(Set(bodies).count == 1_300)
        // Every drained message was acked: none is ready or unacked any more, even after the consumers ended.
        let info = try #require(store.queueInfo("q"))
        #expect(info.ready == 0 && info.unacked == 0)
        try store.close()
    }
}
