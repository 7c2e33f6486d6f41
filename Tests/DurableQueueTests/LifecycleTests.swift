import DurableQueueService
import Foundation
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing
import DurableLog
@testable import DurableQueue

/// The store's lifecycle as a Swift server expects it: a `Service` that closes cleanly on a graceful
/// shutdown or cancellation, an async close that does not block the pool, and a loud line for a store
/// dropped without close.
@Suite(.timeLimit(.minutes(1))) struct LifecycleTests {
    @Test func aGracefulShutdownClosesTheStoreCleanly() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("kept"))
        try await testGracefulShutdown { trigger in
            let service = Task { try await store.run() }
            trigger.triggerGracefulShutdown()
            try await withDeadline(10, "the service's end") { try await service.value }
        }
        let refused = await expectQueueError(.closed) { try await store.publish(to: "q", text("late")) }
        #expect(refused?.code == .closed)
        // Closed cleanly: the next open finds a sealed log and the message.
        let reopened = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? reopened.close() }
        #expect(reopened.openReport.log.cleanShutdown && reopened.queueInfo("q")?.ready == 1)
    }

    @Test func cancellingTheServiceClosesTheStore() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        let service = Task { try await store.run() }
        service.cancel()
        try await withDeadline(10, "the service's end") { try await service.value }
        let refused = await expectQueueError(.closed) { try await store.declareQueue("q") }
        #expect(refused?.code == .closed)
    }

    @Test func aStoreDroppedWithoutCloseSaysSo() async throws {
        let dir = TemporaryDirectory()
        let logs = CapturedLogs()
        var options = testOptions()
        options.logger = logs.logger()
        do {
            let store = try await QueueStore.open(directory: dir.path, options: options)
            try await store.declareQueue("q")
        }
        try await eventually { logs.all.contains { $0.level == .error && $0.message.contains("dropped without close") } }
        // Its log is closed (on a thread of its own): the lock goes, and the store opens again.
        try await eventually { !LogInspector.writerHoldsLock(dir.path + "/wal") }
        try await QueueStore.open(directory: dir.path, options: testOptions()).shutdown()
    }
}
