/// How a queue behaves. Stored in its declaration record, so a durable queue keeps it across restarts.
public struct QueueOptions: Sendable, Equatable {
    /// A durable queue's declaration and persistent messages survive restarts; a transient queue lives in
    /// memory only and is gone after a restart (RabbitMQ's `durable` flag).
    public var durable = true
    /// After this many deliveries a returned message is dead-lettered (or dropped) instead of requeued.
    /// nil: no limit.
    public var deliveryLimit: Int?
    /// Where rejected, expired-by-limit and overflowed messages go (by name); nil drops them.
    public var deadLetterQueue: String?
    /// A delivery not acked within this time goes back to the queue, marked redelivered. nil: no timeout.
    public var ackTimeout: Duration?
    /// The most ready messages the queue holds; what happens beyond it is `overflow`. nil: no limit.
    public var maxLength: Int?
    public var overflow: Overflow = .dropHead

    public enum Overflow: UInt8, Sendable {
        /// The oldest ready message is dead-lettered (or dropped) to make room (RabbitMQ's default).
        case dropHead = 0
        /// The new publish is refused: its confirm is a nack with `.queueFull`.
        case rejectPublish = 1
    }

    public init(durable: Bool = true, deliveryLimit: Int? = nil, deadLetterQueue: String? = nil,
                ackTimeout: Duration? = nil, maxLength: Int? = nil, overflow: Overflow = .dropHead) {
        self.durable = durable
        self.deliveryLimit = deliveryLimit
        self.deadLetterQueue = deadLetterQueue
        self.ackTimeout = ackTimeout
        self.maxLength = maxLength
        self.overflow = overflow
    }
}

/// How long a stream keeps its records. Both limits apply; nil means none.
public struct StreamOptions: Sendable, Equatable {
    /// The oldest records are removed while the stream's payload bytes exceed this.
    public var maxBytes: Int?
    /// Records older than this are removed (checked by the store's maintenance, about once a second).
    public var maxAge: Duration?

    public init(maxBytes: Int? = nil, maxAge: Duration? = nil) {
        self.maxBytes = maxBytes
        self.maxAge = maxAge
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
