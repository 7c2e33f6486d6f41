/// One state change of the store, as written to the log (one log record each). The same value is applied
/// by `StoreState.apply` when it is confirmed and when it is replayed at open, so live and recovered state
/// cannot drift. The byte layout of each kind is in DESIGN.md ("Store records").
///
/// Only the cases that hold another record or a declaration's options are boxed (`indirect`): the others are
/// stored inline (at most 32 bytes of payload), so a publish does not allocate a box per message.
enum StoreRecord: Equatable, Sendable {
    /// A new process opened the store: every delivery of the previous one is void and goes back to its queue.
    case sessionStart(time: Int64)
    indirect case declareQueue(name: String, options: QueueOptions)
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
    indirect case declareStream(name: String, options: StreamOptions)
    case deleteStream(stream: UInt64)
    case streamAppend(stream: UInt64, time: Int64, headers: [String: String], body: [UInt8])
    case commitOffset(stream: UInt64, group: String, offset: UInt64)
    /// Age retention: records before `before` are removed.
    case trimStream(stream: UInt64, before: UInt64)
    /// One operation of transaction `tx` (publish, stream append, ack or offset commit): held back until the
    /// transaction's commit record, dropped if the log ends (or a new session starts) before it. A message
    /// published this way has this record's LSN as its id.
    indirect case txPart(tx: UInt64, StoreRecord)
    /// Applies transaction `tx`'s `parts` held-back operations all at once, or none of them when one cannot
    /// apply (an acked message no longer out, a queue or stream gone, a full queue).
    case txCommit(tx: UInt64, parts: UInt32)
    /// An idempotent producer registers: a new one gets this record's LSN as its id and epoch 0, a known one
    /// keeps its id and its epoch goes up by one (fencing the previous instance).
    case registerProducer(name: String, time: Int64)
    /// A publish or stream append by an idempotent producer: stored only if `sequence` is the next one for
    /// this producer and target and `epoch` is the producer's current one.
    indirect case stamped(producer: UInt64, epoch: UInt32, sequence: UInt64, StoreRecord)
    /// The producer's deduplication state is dropped, if it was idle since `idleSince` (ms since 1970).
    case expireProducer(producer: UInt64, idleSince: Int64)
    /// A half message: stored durably but invisible until resolved. Its id is this record's LSN.
    case prepareHalf(queue: UInt64, time: Int64, headers: [String: String], body: [UInt8])
    case resolveHalf(message: UInt64, HalfOutcome)
    /// A check-back asked about the half message and got no answer (unknown, or the checker failed).
    case halfChecked(message: UInt64, time: Int64)

    /// How a half message ends.
    enum HalfOutcome: Equatable, Sendable {
        /// Made visible in its queue.
        case commit
        /// Discarded at the application's request.
        case rollback
        /// Discarded after its last check-back went unanswered.
        case expired
        /// Moved to another queue after its last check-back went unanswered.
        case moved(queue: UInt64)
    }

    enum Kind: UInt8 {
        case sessionStart = 1, declareQueue, deleteQueue, publish, checkout, ack, requeue, reject, relocate
        case declareStream, deleteStream, streamAppend, commitOffset, trimStream
        case txPart, txCommit, registerProducer, stamped, expireProducer, prepareHalf, resolveHalf, halfChecked
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
        case .txPart: .txPart
        case .txCommit: .txCommit
        case .registerProducer: .registerProducer
        case .stamped: .stamped
        case .expireProducer: .expireProducer
        case .prepareHalf: .prepareHalf
        case .resolveHalf: .resolveHalf
        case .halfChecked: .halfChecked
        }
    }

    /// The kinds a transaction may hold.
    static let transactional: Set<Kind> = [.publish, .streamAppend, .ack, .commitOffset]
    /// The kinds an idempotent producer stamps.
    static let stampable: Set<Kind> = [.publish, .streamAppend]

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 48 + bodyCount)
        encode(to: &w)
        return w.bytes
    }

    /// The bytes `encode` writes.
    var encodedBytes: Int {
        var counter = ByteCounter()
        encode(to: &counter)
        return counter.count
    }

    /// Encodes the record into `slot`, which must be `encodedBytes` long (a record's place in the log's
    /// pending batch: no copy of its own in between).
    func encode(into slot: UnsafeMutableRawBufferPointer) {
        var w = SlotWriter(slot)
        encode(to: &w)
        precondition(w.isFull, "a record's encoding fell short of the size it announced")
    }

    private func encode<W: FieldWriter>(to w: inout W) {
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
        case .txPart(let tx, let inner):
            w.u64(tx)
            inner.encode(to: &w)
        case .txCommit(let tx, let parts):
            w.u64(tx)
            w.u32(parts)
        case .registerProducer(let name, let time):
            w.string(name)
            w.i64(time)
        case .stamped(let producer, let epoch, let sequence, let inner):
            w.u64(producer)
            w.u32(epoch)
            w.u64(sequence)
            inner.encode(to: &w)
        case .expireProducer(let producer, let idleSince):
            w.u64(producer)
            w.i64(idleSince)
        case .prepareHalf(let q, let time, let headers, let body):
            w.u64(q)
            w.i64(time)
            w.headers(headers)
            w.blob(body)
        case .resolveHalf(let id, let outcome):
            w.u64(id)
            switch outcome {
            case .commit: w.u8(1); w.u64(0)
            case .rollback: w.u8(2); w.u64(0)
            case .expired: w.u8(3); w.u64(0)
            case .moved(let q): w.u8(4); w.u64(q)
            }
        case .halfChecked(let id, let time):
            w.u64(id)
            w.i64(time)
        }
    }

    private var bodyCount: Int {
        switch self {
        case .publish(_, _, _, let b), .relocate(_, _, _, let b), .streamAppend(_, _, _, let b),
             .prepareHalf(_, _, _, let b): b.count
        case .txPart(_, let inner), .stamped(_, _, _, let inner): inner.bodyCount
        default: 0
        }
    }

    private static func writeIDs<W: FieldWriter>(_ ids: [UInt64], to w: inout W) {
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
        let record = try decode(&r)
        try r.expectEnd()
        return record
    }

    /// A record nested in a transaction part or a stamp, of one of the `allowed` kinds.
    private static func decodeInner(_ r: inout ByteReader, allowed: Set<Kind>, in outer: Kind)
        throws(ByteReader.Malformed) -> StoreRecord {
        let inner = try decode(&r)
        guard allowed.contains(inner.kind) else { throw .init(description: "a \(inner.kind) record inside \(outer)") }
        return inner
    }

    private static func decode(_ r: inout ByteReader) throws(ByteReader.Malformed) -> StoreRecord {
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
        case .txPart:
            let tx = try r.u64()
            record = .txPart(tx: tx, try decodeInner(&r, allowed: transactional, in: kind))
        case .txCommit:
            record = .txCommit(tx: try r.u64(), parts: try r.u32())
        case .registerProducer:
            record = .registerProducer(name: try r.string(), time: try r.i64())
        case .stamped:
            let producer = try r.u64()
            let epoch = try r.u32()
            let sequence = try r.u64()
            record = .stamped(producer: producer, epoch: epoch, sequence: sequence,
                              try decodeInner(&r, allowed: stampable, in: kind))
        case .expireProducer:
            record = .expireProducer(producer: try r.u64(), idleSince: try r.i64())
        case .prepareHalf:
            let q = try r.u64()
            let time = try r.i64()
            let headers = try r.headers()
            record = .prepareHalf(queue: q, time: time, headers: headers, body: try r.blob())
        case .resolveHalf:
            let id = try r.u64()
            let outcome = try r.u8()
            let q = try r.u64()
            switch outcome {
            case 1: record = .resolveHalf(message: id, .commit)
            case 2: record = .resolveHalf(message: id, .rollback)
            case 3: record = .resolveHalf(message: id, .expired)
            case 4: record = .resolveHalf(message: id, .moved(queue: q))
            default: throw .init(description: "unknown half message outcome \(outcome)")
            }
        case .halfChecked:
            record = .halfChecked(message: try r.u64(), time: try r.i64())
        }
        return record
    }

    /// What the state keeps of a publish or a stream append: its target, time and body size, not the body.
    struct Payload: Equatable {
        var kind: Kind
        var target: UInt64
        var time: Int64
        var bodyBytes: Int
    }

    /// A publish or stream append record read without copying its body or building its headers (what a
    /// replay needs: the state keeps where a body is and its size), its layout checked as `decode` checks it
    /// (every length within the record, nothing after the body; the headers' UTF-8 is checked when the
    /// message is read for delivery); nil for every other kind. The bodies and headers were most of a
    /// replay's allocations.
    static func payload(in bytes: UnsafeRawBufferPointer) throws(ByteReader.Malformed) -> Payload? {
        guard let first = bytes.first, first == Kind.publish.rawValue || first == Kind.streamAppend.rawValue,
              let kind = Kind(rawValue: first) else { return nil }
        var r = ByteReader(bytes)
        _ = try r.u8()
        let target = try r.u64(), time = try r.i64()
        for _ in 0..<(2 * Int(try r.u16())) { _ = try r.raw(Int(try r.u32())) }  // header keys and values
        let bodyBytes = Int(try r.u32())
        _ = try r.raw(bodyBytes)
        try r.expectEnd()
        return Payload(kind: kind, target: target, time: time, bodyBytes: bodyBytes)
    }

    /// The headers and body of a record that carries a message (publish, relocate, stream append, half
    /// message, and those inside a transaction part or a stamp); nil for other kinds.
    static func message(in bytes: UnsafeRawBufferPointer) -> Message? {
        guard let first = bytes.first, let kind = Kind(rawValue: first),
              [.publish, .relocate, .streamAppend, .prepareHalf, .txPart, .stamped].contains(kind),
              let record = try? decode(bytes) else { return nil }
        return record.message
    }

    var message: Message? {
        switch self {
        case .publish(_, _, let h, let b), .relocate(_, _, let h, let b), .streamAppend(_, _, let h, let b),
             .prepareHalf(_, _, let h, let b):
            Message(headers: h, body: b)
        case .txPart(_, let inner), .stamped(_, _, _, let inner): inner.message
        default: nil
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
    /// Application headers, stored with the body. Each pair takes its key's and value's UTF-8 bytes plus 8
    /// of the room a body has in one log record.
    public var headers: [String: String]
    /// The payload. With the headers it must fit one log record: at most `LogOptions.recordBytesMax` less 96
    /// bytes less the headers' share; a larger message is refused with `.invalidArgument`.
    public var body: [UInt8]

    /// A message of `body` and `headers`.
    public init(headers: [String: String] = [:], body: [UInt8]) {
        self.headers = headers
        self.body = body
    }
}
