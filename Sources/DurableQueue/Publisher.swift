import DequeModule
import Synchronization

/// A publisher in confirm mode (RabbitMQ's channel after `confirm.select`): its publishes are numbered 1, 2,
/// 3, ... and each is confirmed once durable (`ack`) or refused (`nack`). Many publishes may be in flight;
/// `confirms` reports them coalesced, one cumulative `ack` for everything confirmed since the last one.
public final class Publisher: Sendable {
    let core = PublisherCore()
    let store: QueueStore

    init(store: QueueStore) { self.store = store }

    /// Publishes without waiting for durability and returns the sequence number its confirm will carry.
    /// Suspends only while the store's pending buffer is full (backpressure).
    /// - Throws: `.notFound` (no such queue; no sequence number is used), `.invalidArgument`.
    @discardableResult
    public func publish(to queue: String, _ message: Message, persistent: Bool = true) async throws(QueueError)
        -> PublishSequence {
        PublishSequence(rawValue: try await store.publishWindowed(to: queue, message, persistent: persistent,
                                                                  publisher: core, wait: true))
    }

    /// The same, but never waits: throws `.pendingFull` when the pending buffer is full.
    @discardableResult
    public func tryPublish(to queue: String, _ message: Message, persistent: Bool = true) async throws(QueueError)
        -> PublishSequence {
        PublishSequence(rawValue: try await store.publishWindowed(to: queue, message, persistent: persistent,
                                                                  publisher: core, wait: false))
    }

    /// Confirms as they happen. Iterate from one task; the iteration ends when that task is cancelled.
    public var confirms: Confirms { Confirms(core: core) }

    /// Waits until every publish so far is confirmed; returns false if any of them was nacked since the
    /// previous call.
    /// - Throws: `.cancelled` when the waiting task is cancelled (the publishes themselves go on).
    public func waitForConfirms() async throws(QueueError) -> Bool {
        while true {
            if let result = await core.waitForConfirms() { return result }
            // Woken because some waiting task was cancelled: this one, or another (then wait again).
            if Task.isCancelled { throw QueueError(.cancelled, "the task waiting for confirms was cancelled") }
        }
    }

    /// A publisher's confirms as an `AsyncSequence`, in sequence order; it ends when the iterating task is
    /// cancelled.
    public struct Confirms: AsyncSequence, Sendable {
        let core: PublisherCore
        public func makeAsyncIterator() -> Iterator { Iterator(core: core) }
        /// Iterates a publisher's confirms; `next()` returns nil once the calling task is cancelled.
        public struct Iterator: AsyncIteratorProtocol {
            let core: PublisherCore
            public mutating func next() async -> Confirm? { await core.nextConfirm() }
        }
    }
}

/// A publisher confirm.
public enum Confirm: Sendable, Equatable {
    /// Every publish up to `sequence` that was not nacked is durable. `multiple` says it covers more than one.
    case ack(sequence: PublishSequence, multiple: Bool)
    /// Publish `sequence` was not stored: the queue is full or gone, or the log failed.
    case nack(sequence: PublishSequence, reason: QueueError)
}

/// A publisher's bookkeeping: which sequence numbers are still unconfirmed, and the confirms not yet read.
final class PublisherCore: Sendable {
    fileprivate enum Outcome { case pending, acked, nacked(QueueError) }

    fileprivate struct State {
        var nextSequence: UInt64 = 1
        /// Outcomes of sequence numbers from `base` on.
        var outcomes: Deque<Outcome> = []
        var base: UInt64 = 1
        var ackedThrough: UInt64 = 0
        var reportedThrough: UInt64 = 0
        var events: Deque<Confirm> = []
        var reader: UnsafeContinuation<Confirm?, Never>?
        var drainWaiters: [UnsafeContinuation<Bool?, Never>] = []
        var nackedSinceWait = false
    }

    private let state = Mutex(State())

    func nextSequenceNumber() -> UInt64 {
        state.withLock { s in
            defer { s.nextSequence += 1 }
            s.outcomes.append(.pending)
            return s.nextSequence
        }
    }

    func resolve(_ sequence: UInt64, _ result: Result<Void, QueueError>) {
        var reader: UnsafeContinuation<Confirm?, Never>?
        var event: Confirm?
        var drained: [UnsafeContinuation<Bool?, Never>] = []
        var allAcked = true
        state.withLock { s in
            let i = Int(sequence - s.base)
            switch result {
            case .success: s.outcomes[i] = .acked
            case .failure(let e):
                s.outcomes[i] = .nacked(e)
                s.nackedSinceWait = true
            }
            // Resolve the contiguous front: acks accumulate into one cumulative ack, each nack stands alone.
            front: while let first = s.outcomes.first {
                switch first {
                case .pending: break front
                case .acked: s.ackedThrough = s.base
                case .nacked(let e):
                    s.flushAck()
                    s.events.append(.nack(sequence: PublishSequence(rawValue: s.base), reason: e))
                    s.reportedThrough = s.base
                    s.ackedThrough = s.base
                }
                s.outcomes.removeFirst()
                s.base += 1
            }
            if s.outcomes.isEmpty, !s.drainWaiters.isEmpty {
                drained = s.drainWaiters
                s.drainWaiters.removeAll()
                allAcked = !s.nackedSinceWait
                s.nackedSinceWait = false
            }
            if let r = s.reader, let e = s.takeEvent() {
                s.reader = nil
                reader = r
                event = e
            }
        }
        reader?.resume(returning: event)
        for w in drained { w.resume(returning: allAcked) }
    }

    /// The next confirm; nil once the calling task is cancelled.
    func nextConfirm() async -> Confirm? {
        if let e = state.withLock({ $0.takeEvent() }) { return e }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { c in
                let now: Confirm?? = state.withLock { s in
                    if let e = s.takeEvent() { return .some(e) }
                    if Task.isCancelled { return .some(nil) }
                    s.reader = c
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let reader = state.withLock { s in
                defer { s.reader = nil }
                return s.reader
            }
            reader?.resume(returning: nil)
        }
    }

    /// Whether every publish so far was acked (nil: the calling task was cancelled first).
    func waitForConfirms() async -> Bool? {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Bool?, Never>) in
                let done: Bool?? = state.withLock { s in
                    if Task.isCancelled { return .some(nil) }
                    guard s.outcomes.isEmpty else {
                        s.drainWaiters.append(c)
                        return .none
                    }
                    defer { s.nackedSinceWait = false }
                    return .some(!s.nackedSinceWait)
                }
                if let done { c.resume(returning: done) }
            }
        } onCancel: {
            // Every waiter is told "cancelled"; a waiter whose task was not cancelled waits again.
            let waiters = state.withLock { s in
                defer { s.drainWaiters.removeAll() }
                return s.drainWaiters
            }
            for w in waiters { w.resume(returning: nil) }
        }
    }
}

extension PublisherCore.State {
    /// Adds a cumulative ack for what was acked since the last report.
    fileprivate mutating func flushAck() {
        guard ackedThrough > reportedThrough else { return }
        events.append(.ack(sequence: PublishSequence(rawValue: ackedThrough), multiple: ackedThrough - reportedThrough > 1))
        reportedThrough = ackedThrough
    }

    fileprivate mutating func takeEvent() -> Confirm? {
        flushAck()
        return events.popFirst()
    }
}
