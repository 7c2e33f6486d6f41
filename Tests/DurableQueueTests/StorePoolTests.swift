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
        fs.holdSyncs()
        try await DurableQueueTests.laneStaysFree(what, held: { fs.waitForHeldSync(seconds: 10) },
                                                  release: { fs.releaseSyncs() }, work)
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

/// Runs `work` on a one-lane executor until the file system holds one of its calls (`held` waits for that),
/// checks that another task on the lane still runs meanwhile, then releases the call and waits for `work`.
func laneStaysFree<T: Sendable>(_ what: String, held: @escaping @Sendable () -> Bool, release: () -> Void,
                                _ work: @escaping @Sendable () async throws -> T) async throws -> T {
    let lane = OneLaneExecutor()
    let task = Task(executorPreference: lane) { try await work() }
    let arrived = await withCheckedContinuation { c in
        Thread.detachNewThread { c.resume(returning: held()) }
    }
    #expect(arrived, "\(what): no file call was held")
    let ran = DispatchSemaphore(value: 0)
    let other = Task(executorPreference: lane) { ran.signal() }
    let otherRan = await withCheckedContinuation { c in
        Thread.detachNewThread { c.resume(returning: ran.wait(timeout: .now() + 10) == .success) }
    }
    release()
    #expect(otherRan, "\(what) held the lane while a file call was held")
    let value = try await task.value
    _ = await other.value
    return value
}

final class StoreHolder: @unchecked Sendable {
    var store: QueueStore?
}

/// A consumer's delivery whose body is not cached is read from the log off the cooperative pool: with every read
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
        let first = try await laneStaysFree("a delivery's log read", held: { fs.waitForHeldRead(seconds: 10) },
                                            release: { fs.releaseReads() }) { () async throws -> String? in
            var deliveries = consumer.deliveries.makeAsyncIterator()
            return try await deliveries.next()?.text
        }
        #expect(first == "m0")
    }
}
