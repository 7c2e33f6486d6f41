import DequeModule
import Synchronization

/// A caller awaiting a submission: the effect of its last record, nil for "the log was full, submit again",
/// or the store's error (a typed result, so no error is ever cast back from `any Error`).
typealias Reply = UnsafeContinuation<Result<StoreState.Effect?, QueueError>, Never>

/// What the store does once a submission's records are durable and applied. Kept with the submission until
/// its confirm arrives.
enum Intent {
    /// Someone awaits the effect of the last record.
    case reply(Reply)
    /// A windowed publish: tell the publisher its sequence number was confirmed (or refused).
    case confirm(PublisherCore, sequence: UInt64)
    /// A consumer's checkout of `requested` messages.
    case checkout(consumer: UInt32, requested: Int)
    /// A consumer's deliveries were acked, rejected or returned; `reply` awaits it when a caller does.
    case settle(consumer: UInt32, tags: [UInt64], reply: Reply?)
    /// A transaction's commit: the deliveries it acks, claimed by consumer, are settled when it applies and
    /// released (out again) when it is refused; `reply` awaits the commit's effect.
    case transaction(reply: Reply, claims: [UInt32: [UInt64]])
    /// Nobody waits (internal returns, relocations, trims).
    case none
}

/// Records on their way to the log, with what to do when they are confirmed. A class: it is the token the
/// log hands back with the confirm (`CompletionSink`).
final class Submission {
    let records: [StoreRecord]
    let intent: Intent
    /// Its caller has had its answer, from the apply or a failure (under the store's lock) or from its deadline
    /// (`ReplyDeadlines`, not under it): whichever sets this first answers, the other does not.
    let answered = Atomic(false)

    /// Claims the right to answer the caller; true once only.
    func claimAnswer() -> Bool { answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged }

    init(records: [StoreRecord], intent: Intent) {
        self.records = records
        self.intent = intent
    }
}

/// A message of a transient queue, or a transient message of a durable queue: memory only.
struct TransientMessage {
    var id: UInt64
    var message: Message
    var deliveries: UInt16
}

/// The store's run-time view of a queue: its consumers and its memory-only messages.
struct QueueRuntime {
    let id: UInt64
    let name: String
    let options: QueueOptions
    var consumers: [UInt32] = []
    var nextConsumer = 0
    /// Ready messages already promised to in-flight checkouts.
    var reserved = 0
    /// Transient messages, ready to deliver.
    var lane: Deque<TransientMessage> = []
    var laneUnacked = 0
}

/// One delivery handed to a consumer and not yet settled.
struct DeliverySlot {
    enum State { case out, settling, settled }
    var tag: UInt64
    var entry: MessageEntry
    var transient: TransientMessage?
    var deliveredAt: ContinuousClock.Instant
    var state: State
}

/// A consumer's state inside the store (its deliveries, credit); the app-facing side is `Consumer`.
struct ConsumerRuntime {
    let id: UInt32
    let queue: UInt64
    let prefetch: Int
    let channel: DeliveryChannel
    var nextTag: UInt64 = 1
    /// Slots by tag: `slots[i].tag == firstTag + i`; settled slots at the front are dropped.
    var slots: Deque<DeliverySlot> = []
    /// Deliveries not yet settled (out, or being settled).
    var held = 0
    /// Deliveries out with the consumer, not being settled: what prefetch limits. A delivery stops counting
    /// when the consumer acks (or nacks) it, not when the ack is durable (RabbitMQ counts the same way), so
    /// that the ack and the checkout of the next messages can share one group commit.
    var out = 0
    /// Messages asked for by the checkout in flight (at most one at a time, so checkouts batch).
    var requested = 0
    var cancelled = false

    var credit: Int { cancelled ? 0 : prefetch - out - requested }

    func index(of tag: UInt64) -> Int? {
        guard let first = slots.first?.tag, tag >= first, tag - first < UInt64(slots.count) else { return nil }
        return Int(tag - first)
    }

    mutating func add(_ entry: MessageEntry, transient: TransientMessage?, now: ContinuousClock.Instant) -> UInt64 {
        let tag = nextTag
        nextTag += 1
        slots.append(DeliverySlot(tag: tag, entry: entry, transient: transient, deliveredAt: now, state: .out))
        held += 1
        out += 1
        return tag
    }

    /// Marks an outstanding delivery as being settled (claimed by an ack, a nack, a return or a transaction).
    mutating func beginSettling(at i: Int) {
        precondition(slots[i].state == .out)
        slots[i].state = .settling
        out -= 1
    }

    /// A claim that did not go through (a transaction rolled back): the delivery is out again.
    mutating func cancelSettling(at i: Int) {
        precondition(slots[i].state == .settling)
        slots[i].state = .out
        out += 1
    }

    mutating func markSettled(_ tags: [UInt64]) {
        for tag in tags {
            if let i = index(of: tag), slots[i].state != .settled {
                if slots[i].state == .out { out -= 1 }
                slots[i].state = .settled
                held -= 1
            }
        }
        while let first = slots.first, first.state == .settled { slots.removeFirst() }
    }
}
