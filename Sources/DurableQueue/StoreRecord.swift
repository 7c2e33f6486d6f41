/// One state change of the store, as written to the log (one log record each). The same value is applied
/// by `StoreState.apply` when it is confirmed and when it is replayed at open, so live and recovered state
/// cannot drift. The byte layout of each kind is in DESIGN.md ("Store records").
enum StoreRecord: Equatable {
    /// A new process opened the store: every delivery of the previous one is void and goes back to its queue.
    case sessionStart(time: Int64)
    case declareQueue(name: String, options: QueueOptions)
    case deleteQueue(queue: UInt64)
    /// A persistent message; its id is this record's LSN.
    case publish(queue: UInt64, time: Int64, headers: [String: String], body: [UInt8])
    /// Consumer `consumer` takes up to `max` ready messages, picked by the state machine in queue order.
    case checkout(queue: UInt64, consumer: UInt32, max: UInt32)
    case ack(queue: UInt64, messages: [UInt64])
    /// Deliveries go back to the queue (or to the dead-letter queue once the delivery limit is reached).
    case requeue(queue: UInt64, reason: ReturnReason, messages: [UInt64])
    /// Negative acknowledgement without requeue: dead-lettered (reason `.rejected`) or dropped.
    case reject(queue: UInt64, messages: [UInt64])
    /// A live message's copy, written by reclamation so that its old segment can be deleted.
    case relocate(queue: UInt64, message: UInt64, headers: [String: String], body: [UInt8])
    case declareStream(name: String, options: StreamOptions)
    case deleteStream(stream: UInt64)
    case streamAppend(stream: UInt64, time: Int64, headers: [String: String], body: [UInt8])
    case commitOffset(stream: UInt64, group: String, offset: UInt64)
    /// Age retention: records before `before` are removed.
    case trimStream(stream: UInt64, before: UInt64)

    enum Kind: UInt8 {
        case sessionStart = 1, declareQueue, deleteQueue, publish, checkout, ack, requeue, reject, relocate
        case declareStream, deleteStream, streamAppend, commitOffset, trimStream
    }

    var kind: Kind {
        switch self {
        case .sessionStart: .sessionStart
        case .declareQueue: .declareQueue
        case .deleteQueue: .deleteQueue
        case .publish: .publish
        case .checkout: .checkout
        case .ack: .ack
        case .requeue: .requeue
        case .reject: .reject
        case .relocate: .relocate
        case .declareStream: .declareStream
        case .deleteStream: .deleteStream
        case .streamAppend: .streamAppend
        case .commitOffset: .commitOffset
        case .trimStream: .trimStream
        }
    }

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 32 + bodyCount)
        w.u8(kind.rawValue)
        switch self {
        case .sessionStart(let time):
            w.i64(time)
        case .declareQueue(let name, let o):
            w.string(name)
            w.bool(o.durable)
            w.u64(o.deliveryLimit.map { UInt64($0) } ?? 0)
            w.string(o.deadLetterQueue ?? "")
            w.i64(o.ackTimeout?.milliseconds ?? 0)
            w.u64(o.maxLength.map { UInt64($0) + 1 } ?? 0)
            w.u8(o.overflow.rawValue)
        case .deleteQueue(let q), .deleteStream(let q):
            w.u64(q)
        case .publish(let q, let time, let headers, let body), .streamAppend(let q, let time, let headers, let body):
            w.u64(q)
            w.i64(time)
            w.headers(headers)
            w.blob(body)
        case .checkout(let q, let consumer, let max):
            w.u64(q)
            w.u32(consumer)
            w.u32(max)
        case .ack(let q, let ids), .reject(let q, let ids):
            w.u64(q)
            Self.writeIDs(ids, to: &w)
        case .requeue(let q, let reason, let ids):
            w.u64(q)
            w.u8(reason.rawValue)
            Self.writeIDs(ids, to: &w)
        case .relocate(let q, let id, let headers, let body):
            w.u64(q)
            w.u64(id)
            w.headers(headers)
            w.blob(body)
        case .declareStream(let name, let o):
            w.string(name)
            w.u64(o.maxBytes.map { UInt64($0) + 1 } ?? 0)
            w.i64(o.maxAge?.milliseconds ?? 0)
        case .commitOffset(let s, let group, let offset):
            w.u64(s)
            w.string(group)
            w.u64(offset)
        case .trimStream(let s, let before):
            w.u64(s)
            w.u64(before)
        }
        return w.bytes
    }

    private var bodyCount: Int {
        switch self {
        case .publish(_, _, _, let b), .relocate(_, _, _, let b), .streamAppend(_, _, _, let b): b.count
        default: 0
        }
    }

    private static func writeIDs(_ ids: [UInt64], to w: inout ByteWriter) {
        w.u32(UInt32(ids.count))
        for id in ids { w.u64(id) }
    }

    private static func readIDs(_ r: inout ByteReader) throws(ByteReader.Malformed) -> [UInt64] {
        let n = Int(try r.u32())
        guard n * 8 <= r.remaining else { throw .init(description: "an id list longer than its record") }
        var ids: [UInt64] = []
        ids.reserveCapacity(n)
        for _ in 0..<n { ids.append(try r.u64()) }
        return ids
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ByteReader.Malformed) -> StoreRecord {
        var r = ByteReader(bytes)
        let raw = try r.u8()
        guard let kind = Kind(rawValue: raw) else {
            throw .init(description: "unknown record kind \(raw) (written by a newer version?)")
        }
        let record: StoreRecord
        switch kind {
        case .sessionStart:
            record = .sessionStart(time: try r.i64())
        case .declareQueue:
            let name = try r.string()
            var o = QueueOptions()
            o.durable = try r.bool()
            let limit = try r.u64()
            o.deliveryLimit = limit == 0 ? nil : Int(limit)
            let dlq = try r.string()
            o.deadLetterQueue = dlq.isEmpty ? nil : dlq
            let timeout = try r.i64()
            o.ackTimeout = timeout == 0 ? nil : .milliseconds(timeout)
            let maxLength = try r.u64()
            o.maxLength = maxLength == 0 ? nil : Int(maxLength - 1)
            guard let overflow = QueueOptions.Overflow(rawValue: try r.u8()) else {
                throw .init(description: "unknown overflow behaviour")
            }
            o.overflow = overflow
            record = .declareQueue(name: name, options: o)
        case .deleteQueue:
            record = .deleteQueue(queue: try r.u64())
        case .deleteStream:
            record = .deleteStream(stream: try r.u64())
        case .publish, .streamAppend:
            let q = try r.u64()
            let time = try r.i64()
            let headers = try r.headers()
            let body = try r.blob()
            record = kind == .publish ? .publish(queue: q, time: time, headers: headers, body: body)
                : .streamAppend(stream: q, time: time, headers: headers, body: body)
        case .checkout:
            record = .checkout(queue: try r.u64(), consumer: try r.u32(), max: try r.u32())
        case .ack, .reject:
            let q = try r.u64()
            let ids = try readIDs(&r)
            record = kind == .ack ? .ack(queue: q, messages: ids) : .reject(queue: q, messages: ids)
        case .requeue:
            let q = try r.u64()
            guard let reason = ReturnReason(rawValue: try r.u8()) else {
                throw .init(description: "unknown requeue reason")
            }
            record = .requeue(queue: q, reason: reason, messages: try readIDs(&r))
        case .relocate:
            let q = try r.u64()
            let id = try r.u64()
            let headers = try r.headers()
            record = .relocate(queue: q, message: id, headers: headers, body: try r.blob())
        case .declareStream:
            let name = try r.string()
            let maxBytes = try r.u64()
            let maxAge = try r.i64()
            record = .declareStream(name: name, options: StreamOptions(
                maxBytes: maxBytes == 0 ? nil : Int(maxBytes - 1), maxAge: maxAge == 0 ? nil : .milliseconds(maxAge)))
        case .commitOffset:
            record = .commitOffset(stream: try r.u64(), group: try r.string(), offset: try r.u64())
        case .trimStream:
            record = .trimStream(stream: try r.u64(), before: try r.u64())
        }
        try r.expectEnd()
        return record
    }

    /// The headers and body of a record that carries a message (publish, relocate, stream append), without
    /// decoding the rest; nil for other kinds.
    static func message(in bytes: UnsafeRawBufferPointer) -> Message? {
        guard let first = bytes.first, let kind = Kind(rawValue: first),
              kind == .publish || kind == .relocate || kind == .streamAppend,
              let record = try? decode(bytes) else { return nil }
        switch record {
        case .publish(_, _, let h, let b), .relocate(_, _, let h, let b), .streamAppend(_, _, let h, let b):
            return Message(headers: h, body: b)
        default: return nil
        }
    }
}

/// Why deliveries went back to their queue.
public enum ReturnReason: UInt8, Sendable {
    /// `nack`/`reject` with requeue.
    case requeued = 1
    /// The consumer was cancelled or dropped.
    case consumerCancelled = 2
    /// The ack timeout passed.
    case ackTimeout = 3
    /// The process that delivered it stopped (found at the next open).
    case restart = 4
}

/// A message's content: what was published.
public struct Message: Sendable, Equatable {
    public var headers: [String: String]
    public var body: [UInt8]

    public init(headers: [String: String] = [:], body: [UInt8]) {
        self.headers = headers
        self.body = body
    }
}
