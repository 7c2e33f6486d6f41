import DequeModule
import Synchronization

/// A message handed to a consumer. Settle it with the consumer's `ack`, `nack` or `reject`.
public struct Delivery: Sendable {
    /// Identifies this delivery on its consumer: what `ack`, `nack` and `reject` take.
    public var tag: DeliveryTag
    /// The message's identity in the store (stable across redeliveries and restarts, unless transient).
    public var messageID: MessageID
    /// The message as published: its headers and body.
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
    /// What a reader gets.
    enum Next: Sendable {
        case delivery(PendingDelivery)
        /// The consumer ended: cancelled, its queue deleted, the store closed, or (with `failure` set) failed.
        case end
        /// The reading task was cancelled.
        case cancelled
        /// Another task is already waiting on this channel.
        case busy
    }

    private struct State {
        var buffer: Deque<PendingDelivery> = []
        var waiter: UnsafeContinuation<Next, Never>?
        var finished = false
        var failure: QueueError?
    }

    private let state = Mutex(State())

    /// Whether a reader is waiting for a delivery.
    var hasWaitingReader: Bool { state.withLock { $0.waiter != nil } }

    /// Why the channel ended, when the store failed.
    var failure: QueueError? { state.withLock { $0.failure } }

    /// Appends deliveries in tag order. Called under the store's lock, so that batches from checkouts applied
    /// one after the other reach the consumer in that order whatever thread hands them over; returns the
    /// waiting reader to resume (after the lock is released), if one waits.
    func enqueue(_ deliveries: [PendingDelivery]) -> (UnsafeContinuation<Next, Never>, PendingDelivery)? {
        guard !deliveries.isEmpty else { return nil }
        return state.withLock { s in
            guard !s.finished else { return nil }
            s.buffer.append(contentsOf: deliveries)
            guard let w = s.waiter else { return nil }
            s.waiter = nil
            return (w, s.buffer.removeFirst())
        }
    }

    /// Ends the channel (with `failure` when the store failed); a waiting reader is told at once.
    func finish(failure: QueueError? = nil) {
        let waiter = state.withLock { s -> UnsafeContinuation<Next, Never>? in
            s.finished = true
            if s.failure == nil { s.failure = failure }
            s.buffer.removeAll()
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: .end)
    }

    /// The next delivery, waiting for one. Returns `.cancelled` as soon as the calling task is cancelled, and
    /// `.busy` when another task is already waiting (one reader at a time).
    func next() async -> Next {
        if let d = state.withLock({ s in s.buffer.popFirst() }) { return .delivery(d) }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Next, Never>) in
                let now: Next? = state.withLock { s in
                    if let d = s.buffer.popFirst() { return .delivery(d) }
                    if s.finished { return .end }
                    if s.waiter != nil { return .busy }
                    if Task.isCancelled { return .cancelled }
                    s.waiter = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> UnsafeContinuation<Next, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: .cancelled)
        }
    }
}

/// A consumer on one queue with a prefetch limit: iterate `deliveries`, then settle each with `ack`, `nack`
/// or `reject`. Settling is durable when the call returns. Cancel it (or drop it) to send its unsettled
/// deliveries back to the queue, marked redelivered.
public final class Consumer: Sendable {
    /// The name of the queue it takes deliveries from.
    public let queue: String
    /// The most deliveries it holds unsettled at once (1 to 65,535), as given to `consume(queue:prefetch:)`.
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

    /// The deliveries, in queue order per checkout. The iteration ends (returns nil) when the consumer is
    /// cancelled, its queue deleted or the store closed, and when the iterating task is cancelled: then the
    /// consumer is cancelled too and its unsettled deliveries go back to the queue (marked redelivered). It
    /// throws the store's error when the store failed (`.logFailed`), and `.invalidArgument` when another task
    /// is already waiting on the same consumer: iterate it from one task at a time.
    ///
    /// An empty queue does not end the iteration (a consumer waits for new messages); to stop, cancel the
    /// task or the consumer:
    ///
    /// ```swift
    /// let consumer = try store.consume(queue: "orders")
    /// let worker = Task {
    ///     for try await delivery in consumer.deliveries {
    ///         try await handle(delivery)
    ///         try await consumer.ack(delivery.tag)
    ///     }
    /// }
    /// // ... at shutdown:
    /// worker.cancel()          // the loop ends; unacked deliveries return to the queue
    /// ```
    public var deliveries: Deliveries { Deliveries(consumer: self) }

    /// A consumer's deliveries as an `AsyncSequence`; `deliveries` says when the iteration ends and what it
    /// throws.
    public struct Deliveries: AsyncSequence, Sendable {
        let consumer: Consumer
        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        /// Iterates a consumer's deliveries; only one task at a time may wait in `next()`.
        public struct Iterator: AsyncIteratorProtocol {
            let consumer: Consumer
            public mutating func next() async throws(QueueError) -> Delivery? {
                if Task.isCancelled {
                    consumer.cancel()
                    return nil
                }
                switch await consumer.channel.next() {
                case .delivery(let pending):
                    return try await consumer.store.resolveOffPool(pending, consumer: consumer.id)
                case .end:
                    if let failure = consumer.channel.failure { throw failure }
                    return nil
                case .cancelled:
                    consumer.cancel()
                    return nil
                case .busy:
                    throw QueueError(.invalidArgument, "another task is already iterating the deliveries of this "
                                     + "consumer; iterate them from one task at a time")
                }
            }
        }
    }

    /// Acknowledges the delivery `tag` (with `multiple`, every outstanding one up to it). Returns once the
    /// ack is durable: the message will not be delivered again, even after a crash.
    public func ack(_ tag: DeliveryTag, multiple: Bool = false) async throws(QueueError) {
        try await store.settle(consumer: id, tag: tag.rawValue, multiple: multiple, as: .ack)
    }

    /// Acknowledges like `ack`, but returns without waiting for the ack to be durable, as AMQP's `basic.ack`
    /// (which has no reply): the deliveries stop counting against prefetch at once, and their record goes
    /// into the next group commit. A crash before that commit delivers the messages again (at least once,
    /// never lost); a failure of the log stops the store, which the next call that waits reports.
    /// - Throws: `.unknownDeliveryTag`, `.cancelled` (the consumer), `.pendingFull` when the log's pending
    ///   buffer is full (nothing is settled: settle again later, or with `ack`, which waits for room), or the
    ///   store's failure.
    public func ackWithoutWaiting(_ tag: DeliveryTag, multiple: Bool = false) throws(QueueError) {
        try store.settleWithoutWaiting(consumer: id, tag: tag.rawValue, multiple: multiple, as: .ack)
    }

    /// `nack` without waiting for it to be durable, as `ackWithoutWaiting` acks. A crash before the next
    /// group commit leaves the deliveries as they were before the nack (they come back unsettled).
    public func nackWithoutWaiting(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool = true) throws(QueueError) {
        try store.settleWithoutWaiting(consumer: id, tag: tag.rawValue, multiple: multiple,
                                       as: requeue ? .requeue : .reject)
    }

    /// Negative acknowledgement: back to the queue (marked redelivered) with `requeue`, else dead-lettered or
    /// dropped as the queue is configured.
    public func nack(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool = true) async throws(QueueError) {
        try await store.settle(consumer: id, tag: tag.rawValue, multiple: multiple, as: requeue ? .requeue : .reject)
    }

    /// `nack` of one delivery.
    public func reject(_ tag: DeliveryTag, requeue: Bool = false) async throws(QueueError) {
        try await store.settle(consumer: id, tag: tag.rawValue, multiple: false, as: requeue ? .requeue : .reject)
    }

    /// Stops deliveries and returns the unsettled ones to the queue.
    public func cancel() { store.cancelConsumer(id) }
}
