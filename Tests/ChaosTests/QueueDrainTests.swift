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
        #expect(batches.joined().map(\.body) == (0..<1_300).map { "m\($0)" })
        // Every drained message was acked: none is ready or unacked any more, even after the consumers ended.
        let info = try #require(store.queueInfo("q"))
        #expect(info.ready == 0 && info.unacked == 0)
        try store.close()
    }
}
