import Testing
import WALSimulation
@testable import DurableQueue

/// A relocation finds its message wherever it is in its queue: in a queue in id order by a binary search
/// alone (which also proves it absent: before, an absent message cost a scan of the whole queue under the
/// store's lock), in one out of order (dead-lettered arrivals, committed half messages) by looking around.
@Suite struct QueueIndexTests {
    private func entry(_ id: UInt64) -> MessageEntry {
        MessageEntry(id: id, bodyLSN: id, bodyBytes: 1, deliveries: 0, deathReason: 0)
    }

    @Test func aQueueInIDOrderFindsEachMessageAndKnowsWhatItLacks() {
        var q = QueueIndex(id: 1, name: "q", options: QueueOptions())
        var pushedOut: [MessageEntry] = []
        for id in stride(from: 10, through: 10_000, by: 10) {
            #expect(q.enqueue(entry(UInt64(id)), force: false, pushedOut: &pushedOut))
        }
        #expect(q.readyInIDOrder)
        for id in stride(from: 10, through: 10_000, by: 10) {
            #expect(q.updateEntry(UInt64(id)) { $0.bodyLSN += 1 }, "\(id)")
        }
        #expect(q.ready.allSatisfy { $0.bodyLSN == $0.id + 1 }, "each change went to its own entry")
        for absent: UInt64 in [0, 5, 15, 9_995, 10_001, .max] { #expect(!q.updateEntry(absent) { _ in }, "\(absent)") }
        q.returned.append(entry(15))
        #expect(q.updateEntry(15) { $0.bodyLSN = 99 } && q.returned.first?.bodyLSN == 99, "a returned one is found too")
        _ = q.popReady()  // the returned one
        _ = q.popReady()  // the oldest ready one: still in order
        #expect(q.readyInIDOrder)
    }

    @Test func aQueueOutOfIDOrderStillFindsEachMessage() {
        var random = SplitMix64(seed: testSeed("QueueIndexTests"))
        var ids = (1...3_000).map { UInt64($0 * 3) }
        // Mostly in order, as a dead-letter queue fills: local swaps, and a few from far away.
        for i in stride(from: 0, to: ids.count - 1, by: 2) where Bool.random(using: &random) { ids.swapAt(i, i + 1) }
        for _ in 0..<30 { ids.swapAt(Int.random(in: 0..<ids.count, using: &random), Int.random(in: 0..<ids.count, using: &random)) }
        var q = QueueIndex(id: 1, name: "dlq", options: QueueOptions())
        for id in ids { q.appendReady(entry(id)) }
        #expect(!q.readyInIDOrder)
        for id in ids.shuffled(using: &random) { #expect(q.updateEntry(id) { $0.bodyLSN = $0.id + 7 }, "\(id)") }
        #expect(q.ready.allSatisfy { $0.bodyLSN == $0.id + 7 }, "each change went to its own entry")
        for absent: UInt64 in [0, 1, 4, 9_001, .max] { #expect(!q.updateEntry(absent) { _ in }, "\(absent)") }
        // The search can end past the last entry (an id larger than all but one at the front): found still.
        var front = QueueIndex(id: 2, name: "front", options: QueueOptions())
        for id: UInt64 in [100, 1, 2, 3] { front.appendReady(entry(id)) }
        for id: UInt64 in [100, 1, 2, 3] { #expect(front.updateEntry(id) { _ in }, "\(id)") }
        // Replacing the entries learns their order, or takes the caller's word for it.
        q.replaceReady(with: ChunkedDeque(ids.sorted().map(entry)))
        #expect(q.readyInIDOrder)
        q.replaceReady(with: ChunkedDeque(ids.map(entry)))
        #expect(!q.readyInIDOrder)
    }

    /// The order survives a checkpoint: a dead-letter queue's arrivals decode out of order, a plain queue's
    /// in order, and every message of both is still found.
    @Test func theOrderSurvivesACheckpoint() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("dlq")
        try await store.declareQueue("q", options: QueueOptions(deadLetterQueue: "dlq"))
        for i in 0..<20 { try await store.publish(to: "q", text("\(i)")) }
        let c = try store.consume(queue: "q", prefetch: 20)
        let got = try await take(20, from: c)
        for d in got.reversed().prefix(10) { try await c.reject(d.tag) }  // newest first: out of id order
        var state = store.core.withLock { $0.state }
        try store.close()
        let dlq = state.queueIDs["dlq"]!, q = state.queueIDs["q"]!
        #expect(!state.queues[dlq]!.readyInIDOrder && state.queues[dlq]!.ready.count == 10)
        let decoded = try Checkpoint.encode(state).withUnsafeBytes { try Checkpoint.decode($0) }
        #expect(!decoded.queues[dlq]!.readyInIDOrder && decoded.queues[q]!.readyInIDOrder)
        for e in state.queues[dlq]!.ready { #expect(state.queues[dlq]!.updateEntry(e.id) { _ in }) }
    }
}
