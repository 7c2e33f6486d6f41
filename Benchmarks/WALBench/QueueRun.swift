import DurableQueue
import Foundation
import Histogram
import LogFormat
import Synchronization
import DurableLog

/// Durable publishes through the queue layer (`QueueStore`), the same workload as `EngineRun`: awaited
/// publishes from `concurrency` tasks, or one windowed publisher with `concurrency` unconfirmed publishes;
/// and end to end, publish -> consume -> ack, with `consumers` consumers acking in batches. The exactly-once
/// shapes are awaited too: transactions of `transactionSize` publishes, idempotent publishes (one producer per
/// task), half messages (prepare, then commit).
struct QueueRun {
    enum Shape: String {
        case awaited, windowed, endToEnd = "end-to-end", transactions = "tx", idempotent, halfMessages = "half"
        /// Consume + ack a backlog published before the clock starts: `consumers` consumers with `concurrency`
        /// deliveries in flight in all.
        case drain = "consume+ack"
    }

    var shape: Shape = .awaited
    var concurrency: Int
    var consumers = 1
    var transactionSize = 1
    var codec: FrameHeader.Codec = .lz4
    var messagesMax: Int
    var secondsMax: Double

    func run(messages: MessageSet, directory: String) async throws -> Measurement {
        let dir = directory + "/store-\(UUID().uuidString.prefix(8))"
        var options = StoreOptions()
        options.log.compression = codec
        let store = try await QueueStore.open(directory: dir, options: options)
        defer {
            try? store.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
        try await store.declareQueue("bench")
        let bodies = messages.bodies()
        if shape == .drain { try await publishBacklog(store, bodies: bodies) }
        let countersBefore = store.logCounters
        let shared = SharedProgress()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(secondsMax * 1e9)
        var latencies = newHistogram()
        var delivered = 0

        switch shape {
        case .awaited, .endToEnd:
            let consuming = shape == .endToEnd ? startConsumers(store, shared: shared) : nil
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { _, i in
                try await store.publish(to: "bench", bodies[i % bodies.count])
            }
            if let consuming {
                // End to end: the clock runs until every published message is acked.
                let published = Int(latencies.totalCount)
                while consuming.acked.load(ordering: .relaxed) < published { try await Task.sleep(for: .milliseconds(1)) }
                consuming.stop.store(true, ordering: .relaxed)
                for c in consuming.consumers { c.cancel() }
                delivered = published
                _ = shared.lastConfirm.max(consuming.lastAck.load(ordering: .relaxed), ordering: .relaxed)
            }
        case .windowed:
            latencies = try await windowed(store, bodies: bodies, deadline: deadline, shared: shared)
        case .transactions:
            let size = transactionSize
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax / size,
                                                      deadline: deadline, shared: shared) { _, i in
                let tx = store.transaction()
                for j in 0..<size { try tx.publish(to: "bench", bodies[(i * size + j) % bodies.count]) }
                try await tx.commit()
            }
        case .idempotent:
            var producers: [IdempotentProducer] = []
            for task in 0..<concurrency { producers.append(try await store.registerProducer(name: "bench-\(task)")) }
            let sequences = (0..<concurrency).map { _ in SequenceCounter() }
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { [producers] task, i in
                let sequence = sequences[task].value.add(1, ordering: .relaxed).newValue
                _ = try await producers[task].publish(to: "bench", bodies[i % bodies.count], sequence: ProducerSequence(rawValue: sequence))
            }
        case .drain:
            delivered = try await drain(store, bodies: bodies, shared: shared)
        case .halfMessages:
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { _, i in
                let id = try await store.prepare(to: "bench", bodies[i % bodies.count])
                try await store.commitHalfMessage(id)
            }
        }
        let cpuEnd = processCPUSeconds()
        let counters = store.logCounters.since(countersBefore)
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        let counted = switch shape {
        case .endToEnd, .drain: delivered
        case .transactions: Int(latencies.totalCount) * transactionSize
        default: Int(latencies.totalCount)
        }
        var m = Measurement(
            scenario: "queue \(shape.rawValue) c=\(concurrency)" + messages.label, concurrency: concurrency, codec: codec == .lz4 ? "lz4" : "none", syncsInFlight: options.log.syncsInFlightMax,
            messages: counted, seconds: seconds, latencies: latencies,
            recordsPerSync: counters.recordsPerSync, bytesWrittenPerRecord: counters.bytesWrittenPerRecord,
            cpuSeconds: cpuEnd - cpuStart, messageBytes: messages.size)
        m.syncMicrosecondsMean = counters.syncMicrosecondsMean
        return m
    }

    final class SequenceCounter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    final class UnackedTally: Sendable {
        let state = Mutex<(count: Int, last: DeliveryTag?)>((0, nil))
    }

    final class Consuming: Sendable {
        let consumers: [Consumer]
        let acked = Atomic<Int>(0)
        let lastAck = Atomic<UInt64>(0)
        let stop = Atomic<Bool>(false)
        init(_ consumers: [Consumer]) { self.consumers = consumers }
    }

    /// Each consumer reads its deliveries in one task and acks them from another with one cumulative
    /// (`multiple`) ack for what arrived since the last: batched acks, as real consumers do.
    private func startConsumers(_ store: QueueStore, shared: SharedProgress, prefetch: Int = 512) -> Consuming {
        let consumers = (0..<consumers).map { _ in try! store.consume(queue: "bench", prefetch: prefetch) }
        let consuming = Consuming(consumers)
        for consumer in consumers {
            let unacked = UnackedTally()
            // The reader notes each delivery and nudges the acker, which acks everything noted so far with one
            // cumulative ack, and again as soon as more arrived meanwhile: batched acks, without polling.
            let (nudges, nudge) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            Task {
                do {
                    for try await d in consumer.deliveries {
                        unacked.state.withLock { $0 = ($0.count + 1, d.tag) }
                        nudge.yield()
                    }
                } catch {}
                nudge.finish()
            }
            Task {
                for await _ in nudges {
                    if consuming.stop.load(ordering: .relaxed) { return }
                    let (count, last) = unacked.state.withLock { u in defer { u = (0, nil) }; return u }
                    guard count > 0, let last else { continue }
                    do { try await consumer.ack(last, multiple: true) } catch { return }
                    consuming.acked.add(count, ordering: .relaxed)
                    _ = consuming.lastAck.max(monotonicNanoseconds(), ordering: .relaxed)
                }
            }
        }
        return consuming
    }

    /// The drain's backlog: `messagesMax` messages, published (windowed) before the clock starts.
    private func publishBacklog(_ store: QueueStore, bodies: [Message]) async throws {
        let publisher = store.publisher()
        for i in 0..<messagesMax { try await publisher.publish(to: "bench", bodies[i % bodies.count]) }
        guard try await publisher.waitForConfirms() else { throw BenchError("a backlog publish was refused") }
    }

    /// Consumes and acks the backlog; returns how many were acked.
    private func drain(_ store: QueueStore, bodies: [Message], shared: SharedProgress) async throws -> Int {
        let consuming = startConsumers(store, shared: shared, prefetch: max(1, concurrency / consumers))
        while consuming.acked.load(ordering: .relaxed) < messagesMax { try await Task.sleep(for: .milliseconds(1)) }
        consuming.stop.store(true, ordering: .relaxed)
        for c in consuming.consumers { c.cancel() }
        _ = shared.lastConfirm.max(consuming.lastAck.load(ordering: .relaxed), ordering: .relaxed)
        return messagesMax
    }

    /// One task publishes through a publisher that holds `concurrency` unconfirmed at most (its `publish`
    /// waits for room); another reads the coalesced confirms for the latencies, which count from the publish
    /// call (a wait for room included) to the confirm.
    private func windowed(_ store: QueueStore, bodies: [Message], deadline: UInt64,
                          shared: SharedProgress) async throws -> Histogram<UInt64> {
        let publisher = try store.publisher(maxUnconfirmed: concurrency)
        let sentAt = LatencySlots(count: messagesMax + 2)
        let final = Atomic<Int>(-1)
        let reader = Task {
            var histogram = newHistogram()
            var done = 0
            for await confirm in publisher.confirms {
                guard case .ack(let sequence, _) = confirm else { continue }
                let t1 = monotonicNanoseconds()
                let last = final.load(ordering: .acquiring)
                while done < Int(sequence.rawValue) {
                    done += 1
                    if last >= 0 && done > last { break }  // the sentinel
                    _ = histogram.record(t1 - sentAt.get(done))
                    _ = shared.lastConfirm.max(t1, ordering: .relaxed)
                }
                if last >= 0 && done > last { break }
            }
            return histogram
        }
        var issued = 0
        while issued < messagesMax && monotonicNanoseconds() < deadline {
            sentAt.set(issued + 1, monotonicNanoseconds())
            try await publisher.publish(to: "bench", bodies[issued % bodies.count])
            issued += 1
        }
        // A sentinel publish whose confirm (after every other) ends the reader.
        final.store(issued, ordering: .releasing)
        try await publisher.publish(to: "bench", bodies[0])
        return await reader.value
    }
}
