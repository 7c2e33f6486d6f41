import Foundation
import Testing
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct IdempotentProducerTests {
    @Test func retriesAreConfirmedAsDuplicatesAndGapsAreRefused() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let p = try await store.registerProducer(name: "orders")
        #expect(p.epoch == 0)
        let first = try await p.publish(to: "q", text("1"), sequence: 1)
        let second = try await p.publish(to: "q", text("2"), sequence: 2)
        guard case .stored(let id2) = second, case .stored = first else { throw TestFailure("not stored: \(first) \(second)") }
        let lsn = store.diskUsage.lastLSN
        #expect(try await p.publish(to: "q", text("2"), sequence: 2) == .duplicate(of: id2))
        #expect(try await p.publish(to: "q", text("1"), sequence: 1) == .duplicate(of: nil))
        #expect(store.diskUsage.lastLSN == lsn, "a retry of a stored sequence is answered without a write")
        await #expect { _ = try await p.publish(to: "q", text("4"), sequence: 4) } throws: {
            ($0 as? QueueError)?.code == .outOfSequence
        }
        guard case .stored = try await p.publish(to: "q", text("3"), sequence: 3) else { throw TestFailure("3 not stored") }
        #expect(store.queueInfo("q")?.ready == 3)
        let c = try store.consume(queue: "q", prefetch: 10)
        #expect(try await take(3, from: c).map(\.text) == ["1", "2", "3"])
    }

    /// Two publishes of one sequence in flight at once (a retry racing the original): one is stored.
    @Test func concurrentRetriesOfOneSequenceStoreItOnce() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let p = try await store.registerProducer(name: "p")
        for sequence in 1...50 as ClosedRange<ProducerSequence> {
            let results = try await withThrowingTaskGroup(of: IdempotentResult<MessageID>.self) { group in
                for _ in 0..<3 { group.addTask { try await p.publish(to: "q", text("\(sequence)"), sequence: sequence) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { if case .stored = $0 { true } else { false } }.count == 1)
        }
        #expect(store.queueInfo("q")?.ready == 50)
    }

    @Test func aNewInstanceFencesTheOldOneAndResumes() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let old = try await store.registerProducer(name: "p")
        _ = try await old.publish(to: "q", text("1"), sequence: 1)
        let second = try await old.publish(to: "q", text("2"), sequence: 2)
        let new = try await store.registerProducer(name: "p")
        #expect(new.id == old.id && new.epoch == 1)
        await #expect { _ = try await old.publish(to: "q", text("3"), sequence: 3) } throws: {
            ($0 as? QueueError)?.code == .fenced
        }
        #expect(try new.lastSequence(queue: "q") == 2)
        guard case .stored(let id2) = second,
              case .duplicate(let original?) = try await new.publish(to: "q", text("2"), sequence: 2) else {
            throw TestFailure("a retry of the last sequence is a duplicate that names the original")
        }
        #expect(original == id2)
        guard case .stored = try await new.publish(to: "q", text("3"), sequence: 3) else { throw TestFailure("3 not stored") }
        #expect(store.queueInfo("q")?.ready == 3)
    }

    @Test func deduplicationSurvivesACrashAndACheckpoint() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.declareStream("s")
        var p = try await store.registerProducer(name: "p")
        for s in 1...5 as ClosedRange<ProducerSequence> { _ = try await p.publish(to: "q", text("\(s)"), sequence: s) }
        try store.checkpoint()
        for s in 6...8 as ClosedRange<ProducerSequence> { _ = try await p.publish(to: "q", text("\(s)"), sequence: s) }
        for s in 1...4 as ClosedRange<ProducerSequence> { _ = try await p.append(to: "s", text("\(s)"), sequence: s) }
        try dropWithoutClosing(store)

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        p = try await store.registerProducer(name: "p")
        #expect(try p.lastSequence(queue: "q") == 8 && p.lastSequence(stream: "s") == 4)
        // The restarted producer resends its whole window: everything comes back as duplicates.
        for s in 1...8 as ClosedRange<ProducerSequence> {
            guard case .duplicate = try await p.publish(to: "q", text("\(s)"), sequence: s) else {
                throw TestFailure("sequence \(s) stored twice")
            }
        }
        #expect(try await p.append(to: "s", text("4"), sequence: 4) == .duplicate(of: 3))
        #expect(try await p.append(to: "s", text("5"), sequence: 5) == .stored(4))
        #expect(store.queueInfo("q")?.ready == 8 && store.streamInfo("s")?.nextOffset == 5)
    }

    @Test func idleProducersExpireAndActiveOnesStay() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualStoreClock()
        var options = testOptions()
        options.clock = clock
        options.producerIdleExpiry = .milliseconds(300)
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareQueue("q")
        let idle = try await store.registerProducer(name: "idle")
        let busy = try await store.registerProducer(name: "busy")
        _ = try await idle.publish(to: "q", text("i"), sequence: 1)
        clock.advance(by: .milliseconds(100))
        _ = try await busy.publish(to: "q", text("b"), sequence: 1)
        // An expiry decided before the producer's last activity does nothing when it applies.
        _ = try await store.perform([.expireProducer(producer: busy.id.rawValue, idleSince: 0)])
        // 301 ms after the idle producer's publish: it is past the expiry, the busy one (201 ms) is not.
        clock.advance(by: .milliseconds(201))
        await store.maintain()
        try await eventually { store.core.withLock { $0.state.producers[idle.id.rawValue] == nil } }
        #expect(store.core.withLock { $0.state.producers[busy.id.rawValue] != nil })
        await #expect { _ = try await idle.publish(to: "q", text("i"), sequence: 2) } throws: {
            ($0 as? QueueError)?.code == .unknownProducer
        }
        guard case .stored = try await busy.publish(to: "q", text("b"), sequence: 2) else {
            throw TestFailure("the busy producer was expired")
        }
    }
}
