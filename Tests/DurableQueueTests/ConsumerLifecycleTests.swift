import Foundation
import Glibc
import Synchronization
import Testing
import DurableLog
@testable import DurableQueue

/// A consumer's iteration follows structured concurrency: cancelling the task ends it at once (and the
/// unsettled deliveries go back), a failed store ends it with the failure, and two tasks cannot wait on one
/// consumer.
@Suite(.timeLimit(.minutes(1))) struct ConsumerLifecycleTests {
    @Test func cancellingTheTaskEndsTheLoopAndReturnsTheDeliveries() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        for i in 0..<3 { try await store.publish(to: "q", text("m\(i)")) }
        let consumer = try store.consume(queue: "q", prefetch: 10)
        let received = Mutex(0)
        let worker = Task {
            for try await _ in consumer.deliveries { received.withLock { $0 += 1 } }
            return "ended"
        }
        try await eventually { received.withLock { $0 } == 3 }
        worker.cancel()
        // The loop ends (the code after it runs), well before any deadline.
        #expect(try await withDeadline(5, "the loop's end") { try await worker.value } == "ended")
        // The three unacked deliveries are back in the queue, and a later publish reaches nobody.
        try await eventually { store.queueInfo("q")?.ready == 3 }
        try await store.publish(to: "q", text("after"))
        #expect(store.queueInfo("q")?.ready == 4 && received.withLock { $0 } == 3)
        let redelivered = try await drain("q", store)
        #expect(redelivered.filter(\.redelivered).count == 3)
    }

    @Test func aTaskGroupShutsDownWithItsConsumers() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        for q in ["a", "b"] { try await store.declareQueue(q) }
        try await withDeadline(5, "the task group's shutdown") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for q in ["a", "b"] {
                    let consumer = try store.consume(queue: q)
                    group.addTask { for try await d in consumer.deliveries { try await consumer.ack(d.tag) } }
                }
                try await store.publish(to: "a", text("x"))
                try await eventually { store.queueInfo("a")?.ready == 0 && store.queueInfo("a")?.unacked == 0 }
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }

    @Test func aSecondWaitingIteratorIsRefused() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let consumer = try store.consume(queue: "q")
        let first = Task { () -> Delivery? in
            var iterator = consumer.deliveries.makeAsyncIterator()
            return try await iterator.next()
        }
        // Once the first task waits in the channel, a second reader is refused at once.
        try await eventually { consumer.channel.hasWaitingReader }
        var iterator = consumer.deliveries.makeAsyncIterator()
        let second = await expectQueueError(.invalidArgument) { _ = try await iterator.next() }
        #expect(second?.code == .invalidArgument && second?.message.contains("one task") == true)
        try await store.publish(to: "q", text("m"))
        #expect(try await withDeadline(5, "the first reader's delivery") { try await first.value }?.text == "m")
    }

    @Test func aFailedStoreEndsTheIterationWithItsFailure() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { try? store.close() }
        try await store.declareQueue("q")
        let consumer = try store.consume(queue: "q")
        let worker = Task { () -> QueueError? in
            do {
                for try await _ in consumer.deliveries {}
                return nil
            } catch {
                return error as? QueueError
            }
        }
        fs.inject(.init(.write, errno: EIO))
        let publish = await expectQueueError(.logFailed) { try await store.publish(to: "q", text("lost")) }
        #expect(publish?.code == .logFailed)
        let ended = try await withDeadline(5, "the iteration's end") { await worker.value }
        #expect(ended?.code == .logFailed)
    }
}

/// Publisher confirms and stream waits follow cancellation and the store's end too.
@Suite(.timeLimit(.minutes(1))) struct WaitCancellationTests {
    @Test func aConfirmsLoopEndsWhenItsTaskIsCancelled() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let publisher = store.publisher()
        try await publisher.publish(to: "q", text("a"))
        let reader = Task { () -> Int in
            var seen = 0
            for await _ in publisher.confirms { seen += 1 }
            return seen
        }
        try await eventually { store.queueInfo("q")?.ready == 1 }
        reader.cancel()
        #expect(try await withDeadline(5, "the confirms loop's end") { await reader.value } <= 1)
    }

    @Test func waitingForConfirmsIsCancellable() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { fs.releaseSyncs(); try? store.close() }
        try await store.declareQueue("q")
        let publisher = store.publisher()
        fs.holdSyncs(pathSuffix: ".wal")
        try await publisher.publish(to: "q", text("held"))
        let waiter = Task { try await publisher.waitForConfirms() }
        waiter.cancel()
        let e = await expectQueueError(.cancelled) { _ = try await withDeadline(5, "the wait's end") { try await waiter.value } }
        #expect(e?.code == .cancelled)
    }

    @Test func aStreamWaitEndsOnCancellationAndOnClose() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareStream("s")
        let cancelled = Task { try await store.waitForRecords(stream: "s", at: 0) }
        cancelled.cancel()
        let e = await expectQueueError(.cancelled) { try await withDeadline(5, "the wait's end") { try await cancelled.value } }
        #expect(e?.code == .cancelled)
        let closing = Task { try await store.waitForRecords(stream: "s", at: 0) }
        try store.close()  // before or after the wait registered: either way it ends with .closed
        let closed = await expectQueueError(.closed) { try await withDeadline(5, "the wait's end") { try await closing.value } }
        #expect(closed?.code == .closed)
    }
}
