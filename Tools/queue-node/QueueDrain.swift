import DurableQueue
import NodeWire
import Synchronization

/// One bounded drain of a queue: takes at most `limit` deliveries (fewer when none comes for `idle`), acks
/// them with one cumulative ack, and returns them in delivery order.
///
/// Bounded on purpose. The messages are acked before the reply that carries them is sent, so a reply that
/// never reaches the client (its call timed out on a long backlog) would leave acked messages that no
/// checker saw, and they would look lost. A bounded drain answers in well under a client's timeout whatever
/// the backlog; the client calls again until a drain comes back empty.
enum QueueDrain {
    static func take(from store: QueueStore, queue: String, limit: Int, idle: Duration) async throws(QueueError)
        -> [DrainedMessage] {
        let limit = min(max(limit, 1), 65_535)
        let consumer = try store.consume(queue: queue, prefetch: limit)
        defer { consumer.cancel() }
        let gathered = Mutex(Gathered())
        let reader = Task {
            do {
                for try await delivery in consumer.deliveries {
                    let taken = DrainedMessage(id: delivery.messageID.rawValue,
                                               body: String(decoding: delivery.message.body, as: UTF8.self))
                    let full = gathered.withLock { g -> Bool in
                        guard !g.closed else { return true }
                        g.messages.append(taken)
                        g.lastTag = delivery.tag
                        g.lastArrival = .now
                        return g.messages.count >= limit
                    }
                    if full { break }
                }
            } catch let error as QueueError {
                gathered.withLock { $0.failure = error }
            } catch {
                gathered.withLock { $0.failure = QueueError(.cancelled, "\(error)") }
            }
        }
        // Polled: an empty queue does not end a consumer's iteration, only a quiet spell does.
        while gathered.withLock({ $0.isGathering(limit: limit, idle: idle) }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Closed before the ack: a delivery that arrives from now on is not returned, and not acked either,
        // so it goes back to the queue when the consumer is cancelled.
        let taken = gathered.withLock { g -> Gathered in g.closed = true; return g }
        if let failure = taken.failure, failure.code != .cancelled {
            reader.cancel()
            throw failure
        }
        // Acked before the reader is cancelled: cancelling it cancels the consumer, which would send the
        // unsettled deliveries back to the queue.
        if let lastTag = taken.lastTag {
            do throws(QueueError) {
                try await consumer.ack(lastTag, multiple: true)
            } catch {
                reader.cancel()
                throw error
            }
        }
        reader.cancel()
        await reader.value
        return taken.messages
    }

    private struct Gathered {
        var messages: [DrainedMessage] = []
        var lastTag: DeliveryTag?
        var lastArrival = ContinuousClock.now
        var failure: QueueError?
        var closed = false

        func isGathering(limit: Int, idle: Duration) -> Bool {
            messages.count < limit && ContinuousClock.now - lastArrival < idle && failure == nil
        }
    }
}
