import Foundation
import Testing
import WALSimulation
@testable import DurableQueue

/// Random sequences of store operations (publish, receive, ack, nack, reject, cancel, transactions,
/// checkpoints, clean reopens and crashes) checked after every step against a small in-memory model of the
/// queue's semantics. Seeded; a failure names the seed and the step, and `MODEL_SEED=S` replays one seed.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ModelTests {
    /// What the store must hold: messages by number.
    struct Model {
        var ready: Set<Int> = []
        /// Read by the consumer and not settled: tag to message number.
        var out: [DeliveryTag: Int] = [:]
        var dead: Set<Int> = []
        var gone: Set<Int> = []
        var nextNumber = 0

        mutating func allReturn() {
            for n in out.values { ready.insert(n) }
            out.removeAll()
        }
    }

    enum Step: CaseIterable { case publish, receive, ack, nack, reject, cancel, transaction, checkpoint, reopen, crash }

    static let seeds: [UInt64] = ProcessInfo.processInfo.environment["MODEL_SEED"].flatMap(UInt64.init).map { [$0] }
        ?? Array(1...12)

    @Test(arguments: seeds)
    func theStoreFollowsTheModel(seed: UInt64) async throws {
        let dir = TemporaryDirectory()
        var rng = SplitMix64(seed: seed)
        var model = Model()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("dlq")
        try await store.declareQueue("q", options: QueueOptions(deadLetterQueue: "dlq"))
        var consumer: Consumer?
        let weights: [(Step, Int)] = [(.publish, 30), (.receive, 25), (.ack, 12), (.nack, 6), (.reject, 4), (.cancel, 3),
                                      (.transaction, 8), (.checkpoint, 3), (.reopen, 3), (.crash, 3)]
        let total = weights.reduce(0) { $0 + $1.1 }

        func message(_ n: Int) -> Message { text("m\(n)") }
        func number(_ d: Delivery) -> Int { Int(d.text.dropFirst())! }

        for stepIndex in 0..<150 {
            var pick = Int.random(in: 0..<total, using: &rng)
            let step = weights.first { pick -= $0.1; return pick < 0 }!.0
            let context = "seed \(seed) step \(stepIndex) (\(step))"
            switch step {
            case .publish:
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    try await store.publish(to: "q", message(model.nextNumber))
                    model.ready.insert(model.nextNumber)
                    model.nextNumber += 1
                }
            case .receive:
                // A consumer holds at most `prefetch` (4) unsettled deliveries.
                guard !model.ready.isEmpty, model.out.count < 4 else { continue }
                if consumer == nil { consumer = try store.consume(queue: "q", prefetch: 4) }
                let received: [Delivery]
                do { received = try await take(1, from: consumer!, within: 10) } catch {
                    let q = store.queueInfo("q")
                    Issue.record("\(context): \(error); model ready \(model.ready.sorted()) out \(model.out); store \(String(describing: q))")
                    return
                }
                let d = try #require(received.first, "\(context)")
                let n = number(d)
                #expect(model.ready.remove(n) != nil, "\(context): delivered m\(n), which is not ready in the model")
                model.out[d.tag] = n
            case .ack, .nack, .reject:
                guard let consumer, let tag = model.out.keys.sorted().randomElement(using: &rng) else { continue }
                let n = model.out.removeValue(forKey: tag)!
                switch step {
                case .ack: try await consumer.ack(tag); model.gone.insert(n)
                case .nack: try await consumer.nack(tag); model.ready.insert(n)
                default: try await consumer.reject(tag); model.dead.insert(n)
                }
            case .cancel:
                consumer?.cancel()
                consumer = nil
                model.allReturn()
            case .transaction:
                let tx = store.transaction()
                let first = model.nextNumber
                try tx.publish(to: "q", message(first))
                try tx.publish(to: "q", message(first + 1))
                let acked = consumer.flatMap { _ in model.out.keys.sorted().randomElement(using: &rng) }
                if let acked, let consumer { try tx.ack(acked, on: consumer) }
                _ = try await tx.commit()
                model.nextNumber += 2
                model.ready.formUnion([first, first + 1])
                if let acked { model.gone.insert(model.out.removeValue(forKey: acked)!) }
            case .checkpoint:
                try store.checkpoint()
            case .reopen, .crash:
                consumer = nil
                if step == .reopen { try store.close() } else { try dropWithoutClosing(store) }
                store = try await QueueStore.open(directory: dir.path, options: testOptions())
                model.allReturn()
            }
            // After every step: the counts agree (checked-out deliveries not yet read count as unacked).
            let q = try #require(store.queueInfo("q"), "\(context)")
            #expect(q.ready + q.unacked == model.ready.count + model.out.count,
                    "\(context): store holds \(q.ready)+\(q.unacked), model \(model.ready.count)+\(model.out.count)")
            #expect(store.queueInfo("dlq")?.ready == model.dead.count, "\(context): dead-lettered")
        }
        // At the end, every message the model holds is there, once, and nothing else.
        consumer?.cancel()
        consumer = nil
        model.allReturn()
        try store.close()
        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        let held = try await drain("q", store).map(number)
        #expect(held.sorted() == model.ready.sorted(), "seed \(seed): final contents")
        let dead = try await drain("dlq", store).map(number)
        #expect(dead.sorted() == model.dead.sorted(), "seed \(seed): dead-letter contents")
        #expect(Set(held).isDisjoint(with: model.gone), "seed \(seed): an acked message came back")
    }
}
