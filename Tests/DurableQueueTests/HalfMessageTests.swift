import Foundation
import Synchronization
import Testing
@testable import DurableQueue

/// Half-message options that make every check due at once.
func immediateChecks(maxChecks: Int = 3, unresolvedQueue: String? = nil) -> StoreOptions {
    var o = testOptions()
    o.halfMessages = HalfMessageOptions(firstCheckAfter: .zero, checkInterval: .zero, maxChecks: maxChecks,
                                        unresolvedQueue: unresolvedQueue)
    return o
}

@Suite(.timeLimit(.minutes(10))) struct HalfMessageTests {
    @Test func aPreparedMessageIsInvisibleUntilCommitted() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let consumer = try store.consume(queue: "q", prefetch: 10)
        let id = try await store.prepare(to: "q", text("pay 10"))
        // The prepare is applied when it returns: had it entered the queue, the counts would show it now.
        #expect(store.queueInfo("q")?.ready == 0 && store.queueInfo("q")?.unacked == 0, "not delivered before commit")
        #expect(store.halfMessages().map(\.id) == [id])
        try await store.commitHalfMessage(id)
        let d = try await take(1, from: consumer)[0]
        #expect(d.text == "pay 10" && d.messageID == id.messageID && !d.redelivered)
        #expect(store.halfMessages().isEmpty)
        await #expect { try await store.commitHalfMessage(id) } throws: { ($0 as? QueueError)?.code == .notFound }
        await #expect { try await store.rollbackHalfMessage(id) } throws: { ($0 as? QueueError)?.code == .notFound }
    }

    @Test func rollbackDiscardsAndPendingOnesSurviveACrash() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        let dropped = try await store.prepare(to: "q", text("local work failed"))
        try await store.rollbackHalfMessage(dropped)
        let kept = try await store.prepare(to: "q", text("commit lost"))
        try store.checkpoint()
        let late = try await store.prepare(to: "q", text("after the checkpoint"))
        try dropWithoutClosing(store)

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        #expect(store.halfMessages().map(\.id) == [kept, late])
        #expect(store.queueInfo("q")?.ready == 0)
        try await store.commitHalfMessage(kept)
        try await store.rollbackHalfMessage(late)
        let c = try store.consume(queue: "q", prefetch: 10)
        #expect(try await take(1, from: c).map(\.text) == ["commit lost"])
        #expect(store.queueInfo("q")?.ready == 0 && store.halfMessages().isEmpty)
    }

    @Test func aFailedPrepareStoresNothing() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        await #expect { _ = try await store.prepare(to: "nowhere", text("x")) } throws: {
            ($0 as? QueueError)?.code == .notFound
        }
        #expect(store.halfMessages().isEmpty && store.diskUsage.liveBytes == 0)
    }

    @Test func committingIntoADeletedQueueDropsTheMessage() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let id = try await store.prepare(to: "q", text("x"))
        try await store.deleteQueue("q")
        await #expect { try await store.commitHalfMessage(id) } throws: { ($0 as? QueueError)?.code == .notFound }
        #expect(store.halfMessages().isEmpty && store.diskUsage.liveBytes == 0)
    }

    /// The commit was lost: the check-back asks the application, which answers "unknown" twice and then
    /// "commit"; the check count is durable across a restart.
    @Test func checkBackResolvesAndCountsChecksDurably() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: immediateChecks(maxChecks: 5))
        try await store.declareQueue("q")
        let commitMe = try await store.prepare(to: "q", text("commit"))
        let rollMe = try await store.prepare(to: "q", text("rollback"))
        let asked = Mutex<[HalfMessageID: Int]>([:])
        let checker: HalfMessageChecker = { check in
            asked.withLock { $0[check.id, default: 0] += 1 }
            if check.checks < 2 { return .unknown }
            return check.message.body == Array("commit".utf8) ? .commit : .rollback
        }
        store.setHalfMessageChecker(checker)
        #expect(await store.checkHalfMessages() == 0)
        #expect(store.halfMessages().map(\.checks) == [1, 1])
        try dropWithoutClosing(store)

        store = try await QueueStore.open(directory: dir.path, options: immediateChecks(maxChecks: 5))
        defer { try? store.close() }
        #expect(store.halfMessages().map(\.checks) == [1, 1])
        store.setHalfMessageChecker(checker)
        #expect(await store.checkHalfMessages() == 0)
        #expect(await store.checkHalfMessages() == 2)
        #expect(store.halfMessages().isEmpty)
        #expect(asked.withLock { $0 } == [commitMe: 3, rollMe: 3])
        let c = try store.consume(queue: "q", prefetch: 10)
        let got = try await take(1, from: c)
        #expect(got.map(\.messageID) == [commitMe.messageID])
        #expect(store.queueInfo("q")?.ready == 0)
    }

    @Test func checksRunOutIntoRollbackOrTheUnresolvedQueue() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: immediateChecks(maxChecks: 2))
        try await store.declareQueue("q")
        _ = try await store.prepare(to: "q", text("never answered"))
        store.setHalfMessageChecker { _ in .unknown }
        for _ in 0..<3 { await store.checkHalfMessages() }
        #expect(store.halfMessages().isEmpty && store.queueInfo("q")?.ready == 0)
        try store.close()

        store = try await QueueStore.open(directory: dir.path, options: immediateChecks(maxChecks: 1, unresolvedQueue: "limbo"))
        defer { try? store.close() }
        try await store.declareQueue("limbo")
        let id = try await store.prepare(to: "q", text("never answered either"))
        store.setHalfMessageChecker { _ in .unknown }
        for _ in 0..<2 { await store.checkHalfMessages() }
        #expect(store.halfMessages().isEmpty && store.queueInfo("q")?.ready == 0)
        let d = try await take(1, from: try store.consume(queue: "limbo", prefetch: 1))[0]
        #expect(d.messageID == id.messageID && d.deadLetterReason == .halfMessageUnresolved)
    }

    @Test func theCheckBackWaitsForItsDelays() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.halfMessages = HalfMessageOptions(firstCheckAfter: .seconds(3600), checkInterval: .seconds(3600))
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareQueue("q")
        _ = try await store.prepare(to: "q", text("x"))
        store.setHalfMessageChecker { _ in .commit }
        #expect(await store.checkHalfMessages() == 0)
        #expect(store.halfMessages().count == 1 && store.halfMessages()[0].checks == 0)
    }
}
