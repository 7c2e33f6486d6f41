import Foundation
import Testing
import DurableLog
@testable import DurableQueue

/// `ackWithoutWaiting` and `nackWithoutWaiting`: settled and appended at once, durable with the next group
/// commit, refused whole (nothing settled) when the record cannot be appended. The log's syncs are held at the
/// fault-injecting file system's gate where the test needs nothing to become durable.
@Suite(.timeLimit(.minutes(5))) struct SettleWithoutWaitingTests {
    @Test func anAckThatDoesNotWaitFreesPrefetchAtOnceAndIsDurableWithTheNextCommit() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        try await store.declareQueue("q")
        for i in 1...4 { try await store.publish(to: "q", text("\(i)")) }
        let consumer = try store.consume(queue: "q", prefetch: 2)
        let first = try await take(2, from: consumer)
        fs.holdSyncs(pathSuffix: ".wal")
        // Returns with the sync of its record held: it does not wait for it.
        try consumer.ackWithoutWaiting(first[1].tag, multiple: true)
        #expect(fs.waitForHeldSync(seconds: 10), "the ack's group reached its sync")
        expectQueueError(.unknownDeliveryTag, "both deliveries are settled on the consumer at once") {
            try consumer.ackWithoutWaiting(first[0].tag)
        }
        let beforeCommit = store.queueInfo("q")?.unacked
        #expect(beforeCommit == 2, "the queue's own state changes when the ack is durable and applied")
        fs.releaseSyncs()
        // The freed prefetch took the next two (their checkout followed the ack into the log).
        let next = try await take(2, from: consumer)
        #expect(next.map(\.text) == ["3", "4"])
        try await consumer.ack(next[1].tag, multiple: true)
        try dropWithoutClosing(store)
        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        let after = try #require(store.queueInfo("q"))
        #expect(after.ready == 0 && after.unacked == 0, "the ack that did not wait is durable: nothing comes back")
    }

    @Test func aNackThatDoesNotWaitRequeuesOrDeadLetters() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("dead")
        try await store.declareQueue("q", options: QueueOptions(deadLetterQueue: "dead"))
        try await store.publish(to: "q", text("again"))
        try await store.publish(to: "q", text("poison"))
        let consumer = try store.consume(queue: "q", prefetch: 2)
        let got = try await take(2, from: consumer)
        try consumer.nackWithoutWaiting(got[0].tag, requeue: true)
        try consumer.nackWithoutWaiting(got[1].tag, requeue: false)
        let back = try await take(1, from: consumer)
        #expect(back[0].text == "again")
        #expect(back[0].deliveryCount == 2)
        try await consumer.ack(back[0].tag)
        let dead = try store.consume(queue: "dead")
        let deadLettered = try await take(1, from: dead)
        let reason: DeadLetterReason? = deadLettered[0].deadLetterReason
        #expect(deadLettered[0].text == "poison")
        #expect(reason == DeadLetterReason.rejected)
    }

    @Test func anUnknownTagIsRefusedAtOnce() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("x"))
        let consumer = try store.consume(queue: "q", prefetch: 1)
        let d = try await take(1, from: consumer)[0]
        try consumer.ackWithoutWaiting(d.tag)
        expectQueueError(.unknownDeliveryTag) { try consumer.ackWithoutWaiting(d.tag) }
        let unknown = DeliveryTag(rawValue: 999)
        expectQueueError(.unknownDeliveryTag) { try consumer.nackWithoutWaiting(unknown) }
    }

    @Test func aFullPendingBufferRefusesTheAckAndLeavesTheDeliveryOut() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        var options = testOptions()
        options.log.pendingRecordsMax = 8
        let store = try await QueueStore.open(directory: dir.path, options: options, fileSystem: fs)
        defer { fs.releaseSyncs(); try? store.close() }
        try await store.declareQueue("q")
        try await store.declareQueue("filler")
        try await store.publish(to: "q", text("x"))
        let consumer = try store.consume(queue: "q", prefetch: 1)
        let d = try await take(1, from: consumer)[0]
        fs.holdSyncs(pathSuffix: ".wal")
        // Fill the log's pending buffer (8 records) behind a held sync: the first publish's group is written
        // and its sync held, so the writer takes nothing more (one sync in flight at most, and the batch stays
        // below the run-ahead size).
        let publisher = store.publisher()
        try await publisher.tryPublish(to: "filler", text("first"))
        #expect(fs.waitForHeldSync(seconds: 10), "the first group's sync reached the gate")
        var full = false
        for _ in 0..<100 where !full {
            do throws(QueueError) {
                try await publisher.tryPublish(to: "filler", text("filler"))
            } catch {
                #expect(error.code == .pendingFull)
                full = true
            }
        }
        #expect(full, "the pending buffer filled")
        expectQueueError(.pendingFull) { try consumer.ackWithoutWaiting(d.tag) }
        let unacked = store.queueInfo("q")?.unacked
        #expect(unacked == 1, "nothing was settled")
        fs.releaseSyncs()
        // Still out with the consumer: an ack that waits settles it.
        try await withDeadline(10, "the ack after the refused one") { try await consumer.ack(d.tag) }
        #expect(store.queueInfo("q")?.unacked == 0)
    }
}
