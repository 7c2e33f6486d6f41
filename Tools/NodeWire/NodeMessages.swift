import Foundation

/// What a test client asks a `queue-node`: one JSON object per line, one request per connection. A plain,
/// readable protocol on purpose (`nc` can speak it); it carries the chaos campaign's small messages, not a
/// benchmark's.
public enum NodeRequest: Codable, Sendable, Equatable {
    /// The node's role in its group now.
    case status
    /// Declares a durable queue (on the leader only: `.failed(notLeader)` elsewhere).
    case declareQueue(name: String)
    /// Registers an idempotent producer under `name` (forwarded to the leader from a follower).
    case registerProducer(name: String)
    /// Publishes `body` to `queue` as `sequence` of the producer `producer` at `epoch` (forwarded from a
    /// follower); the reply comes once every in-sync replica holds it.
    case publish(producer: UInt64, epoch: UInt32, queue: String, sequence: UInt64, body: String)
    /// On the leader: takes at most `limit` messages off `queue` (fewer when no delivery arrives for
    /// `idleMilliseconds`), acks them, and replies with them in delivery order. Call again until a reply is
    /// empty: bounded so that the reply comes well within a call's timeout whatever the backlog.
    case drain(queue: String, idleMilliseconds: Int, limit: Int)
    /// On the leader: a consumer of `queue` whose acks the client gives. The node sends `.delivered` for each
    /// delivery and waits for the client's `.ack` of it before the next; it acks it in the store and sends
    /// `.acked` once the ack is confirmed. The session ends when the client closes the connection, when no
    /// delivery comes for `idleMilliseconds`, or with `.failed` (the node stopped leading); the deliveries
    /// it did not ack go back to the queue.
    case consume(queue: String, idleMilliseconds: Int)
    /// Within a `consume` session: ack the delivery `tag` (the one just sent).
    case ack(tag: UInt64)
}

/// A `queue-node`'s answer to one `NodeRequest`.
public enum NodeReply: Codable, Sendable, Equatable {
    /// The node's role: "leader", "follower", "candidate", "starting" or "stopped"; the epoch it leads or
    /// follows under, and the leader it follows; its replica (`member#incarnation`); on a leader, the group's
    /// in-sync set (itself included), as replicas.
    case status(role: String, epoch: UInt64?, leader: String?, replica: String?, inSync: [String]?)
    /// Done (a declared queue).
    case done
    /// A registered producer's id and epoch.
    case registered(producer: UInt64, epoch: UInt32)
    /// Stored now, under this message id.
    case stored(id: UInt64)
    /// That sequence had been stored before: not stored again.
    case duplicate
    /// The drained messages, in delivery order.
    case messages([DrainedMessage])
    /// Within a `consume` session: a delivery, to be acked by its `tag`.
    case delivered(id: UInt64, body: String, tag: UInt64)
    /// Within a `consume` session: the ack of message `id` is confirmed (on every in-sync replica).
    case acked(id: UInt64)
    /// The store's error: its `QueueError.Code` by name (`indeterminate`, `notLeader`, ...), its message and
    /// the leader hint.
    case failed(code: String, message: String, leaderHint: String?)
}

/// A message taken by `drain`: its id in the store and its body. A message whose ack did not complete is
/// delivered again to a later drain under the same id; the same body under two ids was stored twice.
public struct DrainedMessage: Codable, Sendable, Equatable {
    public var id: UInt64
    public var body: String

    public init(id: UInt64, body: String) {
        self.id = id
        self.body = body
    }
}

/// One line of the protocol: the JSON of a request or reply, then "\n".
public enum NodeLine {
    public static func encode<Value: Encodable>(_ value: Value) -> [UInt8] {
        // The messages are plain enums of strings and integers: encoding cannot fail.
        var bytes = [UInt8]((try? JSONEncoder().encode(value)) ?? Data())
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    public static func decode<Value: Decodable>(_ type: Value.Type, from line: some Sequence<UInt8>) throws -> Value {
        try JSONDecoder().decode(type, from: Data(line))
    }
}
