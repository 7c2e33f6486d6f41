import DequeModule
import Synchronization

/// A message handed to a consumer. Settle it with the consumer's `ack`, `nack` or `reject`.
public struct Delivery: Sendable {
    /// Identifies this delivery on its consumer (1, 2, 3, ... per consumer).
    public var tag: UInt64
    /// The message's identity in the store (stable across redeliveries and restarts; 0 for transient).
    public var messageID: UInt64
    public var message: Message
    /// How many times the message was delivered, this time included.
    public var deliveryCount: Int
    /// True when the message was delivered before (to this or another consumer, in this or an earlier run).
    public var redelivered: Bool { deliveryCount > 1 }
    /// Set on messages that arrived in a dead-letter queue: why they were dead-lettered.
    public var deadLetterReason: DeadLetterReason?
}

/// A delivery checked out to a consumer but not yet read by it.
struct PendingDelivery: Sendable {
    var tag: UInt64
    var entry: MessageEntry
    var transient: Message?
}

/// The buffer between the store (which pushes checked-out deliveries) and a consumer's iterator.
final class DeliveryChannel: Sendable {
    private struct State {
        var buffer: Deque<PendingDelivery> = []
        var waiter: UnsafeContinuation<PendingDelivery?, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Appends deliveries in tag order. Called under the store's lock, so that batches from checkouts applied
    /// one after the other reach the consumer in that order whatever thread hands them over; returns the
    /// waiting reader to resume (after the lock is released), if one waits.
    func enqueue(_ deliveries: [PendingDelivery]) -> (UnsafeContinuation<PendingDelivery?, Never>, PendingDelivery)? {
        guard !deliveries.isEmpty else { return nil }
        return state.withLock { s in
            guard !s.finished else { return nil }
            s.buffer.append(contentsOf: deliveries)
            guard let w = s.waiter else { return nil }
            s.waiter = nil
            return (w, s.buffer.removeFirst())
        }
    }

    func finish() {
        let waiter = state.withLock { s -> UnsafeContinuation<PendingDelivery?, Never>? in
            s.finished = true
            s.buffer.removeAll()
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    func next() async -> PendingDelivery? {
        if let d = state.withLock({ s in s.buffer.popFirst() }) { return d }
        return await withUnsafeContinuation { c in
            let now: PendingDelivery?? = state.withLock { s in
                if let d = s.buffer.popFirst() { return .some(d) }
                if s.finished { return .some(nil) }
                s.waiter = c
                return .none
            }
            if let now { c.resume(returning: now) }
        }
    }
}

/// A consumer on one queue with a prefetch limit: iterate `deliveries`, then settle each with `ack`, `nack`
/// or `reject`. Settling is durable when the call returns. Cancel it (or drop it) to send its unsettled
/// deliveries back to the queue, marked redelivered.
public final class Consumer: Sendable {
    public let queue: String
    public let prefetch: Int
    let id: UInt32
    let channel: DeliveryChannel
    let store: QueueStore

    init(queue: String, prefetch: Int, id: UInt32, channel: DeliveryChannel, store: QueueStore) {
        self.queue = queue
        self.prefetch = prefetch
        self.id = id
        self.channel = channel
        self.store = store
    }

    deinit { store.cancelConsumer(id) }

    /// The deliveries, in queue order per checkout; ends when the consumer is cancelled, its queue deleted or
    /// the store closed. Iterate it from one task.
    public var deliveries: Deliveries { Deliveries(consumer: self) }

    public struct Deliveries: AsyncSequence, Sendable {
        let consumer: Consumer
        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: Consumer
            public mutating func next() async throws -> Delivery? {
                guard let pending = await consumer.channel.next() else { return nil }
                return try consumer.store.resolve(pending, consumer: consumer.id)
            }
        }
    }

    /// Acknowledges the delivery `tag` (with `multiple`, every outstanding one up to it). Returns once the
    /// ack is durable: the message will not be delivered again, even after a crash.
    public func ack(_ tag: UInt64, multiple: Bool = false) async throws {
        try await store.settle(consumer: id, tag: tag, multiple: multiple, as: .ack)
    }

    /// Negative acknowledgement: back to the queue (marked redelivered) with `requeue`, else dead-lettered or
    /// dropped as the queue is configured.
    public func nack(_ tag: UInt64, multiple: Bool = false, requeue: Bool = true) async throws {
        try await store.settle(consumer: id, tag: tag, multiple: multiple, as: requeue ? .requeue : .reject)
    }

    /// `nack` of one delivery.
    public func reject(_ tag: UInt64, requeue: Bool = false) async throws {
        try await store.settle(consumer: id, tag: tag, multiple: false, as: requeue ? .requeue : .reject)
    }

    /// Stops deliveries and returns the unsettled ones to the queue.
    public func cancel() { store.cancelConsumer(id) }
}
