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
    /// What happens when a publish finds the queue at `maxLength` ready messages (ignored without a limit).
    public var overflow: Overflow = .dropHead

    /// What happens to a message beyond a queue's `maxLength`.
    public enum Overflow: UInt8, Sendable {
        /// The oldest ready message is dead-lettered (or dropped) to make room (RabbitMQ's default).
        case dropHead = 0
        /// The new publish is refused: its confirm is a nack with `.queueFull`.
        case rejectPublish = 1
    }

    /// Options for `QueueStore.declareQueue(_:options:)`: each argument sets the property of its name, and
    /// the defaults are the properties' defaults. Declaring checks them (`.invalidArgument`).
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

    /// Options for `QueueStore.declareStream(_:options:)`; nil for either limit means none. Declaring checks
    /// them (`.invalidArgument`).
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

// MARK: - Validation at the door

/// Options are checked when a queue or stream is declared, so that every value stored in a declaration
/// record reads back as the same value after a restart (durations in whole milliseconds, counts not
/// negative), and a bad value is an error naming its valid range rather than a crash later.
extension QueueOptions {
    /// The longest ack timeout: long enough for any consumer, short enough that milliseconds never overflow.
    public static let ackTimeoutMax = Duration.seconds(86_400 * 1_000)

    func validate() throws(QueueError) {
        if let limit = deliveryLimit, limit < 1 {
            throw QueueError(.invalidArgument, "deliveryLimit is 1 or more (nil for no limit), not \(limit)")
        }
        if let max = maxLength, max < 0 {
            throw QueueError(.invalidArgument, "maxLength is 0 or more (nil for no limit), not \(max)")
        }
        if let timeout = ackTimeout {
            try checkWholeMilliseconds(timeout, named: "ackTimeout", max: Self.ackTimeoutMax)
        }
        if let dlq = deadLetterQueue, dlq.isEmpty || dlq.utf8.count > 255 {
            throw QueueError(.invalidArgument, "deadLetterQueue is a queue name of 1 to 255 bytes (nil for none)")
        }
    }
}

extension StreamOptions {
    /// The longest retention by age.
    public static let maxAgeMax = Duration.seconds(86_400 * 100_000)

    func validate() throws(QueueError) {
        if let bytes = maxBytes, bytes < 0 {
            throw QueueError(.invalidArgument, "maxBytes is 0 or more (nil for no limit), not \(bytes)")
        }
        if let age = maxAge { try checkWholeMilliseconds(age, named: "maxAge", max: Self.maxAgeMax) }
    }
}

/// Durations are stored in milliseconds: a value with a fraction of one would come back different after a
/// restart (and then mismatch its own declaration).
private func checkWholeMilliseconds(_ d: Duration, named name: String, max: Duration) throws(QueueError) {
    guard d >= .milliseconds(1), d <= max, d == .milliseconds(d.milliseconds) else {
        throw QueueError(.invalidArgument, "\(name) is a whole number of milliseconds from 1 ms to \(max), not \(d)")
    }
}
