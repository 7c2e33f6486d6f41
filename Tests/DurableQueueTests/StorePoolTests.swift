import Dispatch
import Foundation
import Testing
import WALSimulation
import DurableLog
@testable import DurableQueue

/// The store's blocking file work (opening: recovery and replay; checkpoints; closing) never holds the
/// calling task's thread: with the file system holding every sync open, another task on the same single
/// lane still runs.
@Suite(.timeLimit(.minutes(1))) struct StorePoolTests {
    /// Runs `work` on a one-lane executor while syncs are held, and checks that the lane stays free.
    private func laneStaysFree(_ fs: FaultInjectingFileSystem, _ what: String,
                               _ work: @escaping @Sendable () async throws -> Void) async throws {
        let lane = OneLaneExecutor()
        fs.holdSyncs()
        let task = Task(executorPreference: lane) { try await work() }
        let arrived = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: fs.waitForHeldSync(seconds: 10)) }
        }
        #expect(arrived, "\(what): no sync was held")
        let ran = DispatchSemaphore(value: 0)
        let other = Task(executorPreference: lane) { ran.signal() }
        let otherRan = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: ran.wait(timeout: .now() + 10) == .success) }
        }
        fs.releaseSyncs()
        #expect(otherRan, "\(what) held the lane while a sync was held")
        try await task.value
        _ = await other.value
    }

    @Test func openingAndCheckpointingLeaveTheLaneFree() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path
        let fs = FaultInjectingFileSystem()
        let holder = StoreHolder()
        try await laneStaysFree(fs, "open") {
            holder.store = try await QueueStore.open(directory: path, options: testOptions(), fileSystem: fs)
        }
        let store = try #require(holder.store)
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("m"))
        try await laneStaysFree(fs, "reclaim (checkpoint)") { try await store.reclaim() }
        try await laneStaysFree(fs, "shutdown") { try await store.shutdown() }
    }
}

final class StoreHolder: @unchecked Sendable {
    var store: QueueStore?
}

/// A consumer's delivery whose body is not cached is read from the log on a thread of its own: with every read
/// of the log held (a slow disk), another task on the consumer's single lane still runs.
@Suite(.timeLimit(.minutes(1))) struct DeliveryReadPoolTests {
    @Test func aDeliveryReadFromTheLogLeavesTheLaneFree() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        try await store.declareQueue("q")
        for i in 0..<3 { try await store.publish(to: "q", text("m\(i)")) }
        try store.close()
        // Reopened: the bodies are in the log only, not in the store's cache.
        store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { try? store.close() }
        let consumer = try store.consume(queue: "q", prefetch: 3)
        fs.holdReads(pathSuffix: ".wal")
        let lane = OneLaneExecutor()
        let reader = Task(executorPreference: lane) { () throws -> String? in
            var deliveries = consumer.deliveries.makeAsyncIterator()
            return try await deliveries.next()?.text
        }
        let held = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: fs.waitForHeldRead(seconds: 10)) }
        }
        #expect(held, "the delivery did not read the log")
        let ran = DispatchSemaphore(value: 0)
        let other = Task(executorPreference: lane) { ran.signal() }
        let otherRan = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: ran.wait(timeout: .now() + 10) == .success) }
        }
        fs.releaseReads()
        #expect(otherRan, "the delivery's log read held the consumer's lane")
        #expect(try await reader.value == "m0")
        _ = await other.value
    }
}
