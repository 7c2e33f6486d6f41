/// The numbers the store hands out and takes back, each its own type, so that one kind cannot be passed where
/// another is meant (a delivery tag to `commitHalfMessage`, a message id to `ack`). Each wraps the `UInt64`
/// the store keeps on disk; `rawValue` gives it back, for an application that stores it elsewhere (each is
/// `Codable` as that number).
public protocol StoreIdentifier: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible
where RawValue == UInt64 {
    init(rawValue: UInt64)
}

extension StoreIdentifier {
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A persistent message's identity in the store: given when it is published, the same on every redelivery and
/// after every restart. Ids grow with publication order. A transient message (not persistent, or on a transient
/// queue) has an id of its own too, unique only while the store is open.
public struct MessageID: StoreIdentifier {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Whether this is a transient message's id (the top bit set), which means nothing after a restart.
    public var isTransient: Bool { rawValue & (1 << 63) != 0 }
}

/// Identifies one delivery on its consumer (1, 2, 3, ... per consumer); what `ack`, `nack` and `reject` take.
/// A redelivery of the same message gets a new tag.
public struct DeliveryTag: StoreIdentifier {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A half message's identity, from `prepare(to:_:)` until it is committed or rolled back.
public struct HalfMessageID: StoreIdentifier {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The id its message has in the queue once committed (a commit moves the message, it does not copy it).
    public var messageID: MessageID { MessageID(rawValue: rawValue) }
}

/// An idempotent producer's identity: stable across the producer's restarts (it registers again by name), so
/// that the store can recognize a retried publish.
public struct ProducerID: StoreIdentifier {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A record's position in its stream: 0 for the first record ever appended, one more for each after it.
/// Retention moves a stream's first offset forward; offsets are never reused.
public struct StreamOffset: StoreIdentifier, Strideable, ExpressibleByIntegerLiteral {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// The offset of a stream's first record.
    public static let start = StreamOffset(rawValue: 0)
    /// The offset after this one.
    public var next: StreamOffset { StreamOffset(rawValue: rawValue + 1) }

    public static func < (a: StreamOffset, b: StreamOffset) -> Bool { a.rawValue < b.rawValue }
    public func distance(to other: StreamOffset) -> Int64 { Int64(bitPattern: other.rawValue &- rawValue) }
    public func advanced(by n: Int64) -> StreamOffset { StreamOffset(rawValue: rawValue &+ UInt64(bitPattern: n)) }
}

/// The sequence number an idempotent producer gives each publish or append, per queue or stream: 1, 2, 3, ...
/// The store keeps the highest one it stored and answers a repeat with the original outcome.
public struct ProducerSequence: StoreIdentifier, Strideable, ExpressibleByIntegerLiteral {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// The sequence after this one.
    public var next: ProducerSequence { ProducerSequence(rawValue: rawValue + 1) }

    public static func < (a: ProducerSequence, b: ProducerSequence) -> Bool { a.rawValue < b.rawValue }
    public func distance(to other: ProducerSequence) -> Int64 { Int64(bitPattern: other.rawValue &- rawValue) }
    public func advanced(by n: Int64) -> ProducerSequence { ProducerSequence(rawValue: rawValue &+ UInt64(bitPattern: n)) }
}

/// A publisher's number for one of its publishes in confirm mode (1, 2, 3, ... per publisher), which its
/// confirm carries.
public struct PublishSequence: StoreIdentifier, ExpressibleByIntegerLiteral {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }
}
