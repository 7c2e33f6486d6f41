import DurableQueue

/// A write made on a follower, as it travels to the leader (in a replication `request` message), and the
/// leader's reply. Little-endian, with the store's own `ByteWriter` and `ByteReader` (the layout of its log
/// records): strings and bodies are a u32 length and the bytes; headers a u16 count and the pairs in key order.
enum StoreRequest: Equatable, Sendable {
    case publish(queue: String, message: Message, persistent: Bool)
    case append(stream: String, message: Message)
    case commitOffset(stream: String, group: String, offset: UInt64)
    case registerProducer(name: String)
    /// An idempotent producer's publish (`stream: false`) or stream append (`stream: true`).
    case producerSend(producer: ProducerStamp, stream: Bool, target: String, message: Message, sequence: UInt64)
    /// The last sequence the store holds from a producer for a queue or a stream.
    case lastSequence(producer: UInt64, stream: Bool, target: String)
    /// A transaction's operations (publishes, stream appends, offset commits), committed as one.
    case transaction([TransactionOperation])

    /// A producer as registered: its id and the epoch of this instance.
    struct ProducerStamp: Equatable, Sendable {
        var id: UInt64
        var epoch: UInt32
    }

    enum TransactionOperation: Equatable, Sendable {
        case publish(queue: String, message: Message)
        case append(stream: String, message: Message)
        case commitOffset(stream: String, group: String, offset: UInt64)
    }

    private enum Kind: UInt8 {
        case publish = 1, append = 2, commitOffset = 3, registerProducer = 4, producerSend = 5, lastSequence = 6,
             transaction = 7
    }

    var encoded: [UInt8] {
        var w = ByteWriter()
        switch self {
        case .publish(let queue, let message, let persistent):
            w.u8(Kind.publish.rawValue)
            w.string(queue)
            w.message(message)
            w.u8(persistent ? 1 : 0)
        case .append(let stream, let message):
            w.u8(Kind.append.rawValue)
            w.string(stream)
            w.message(message)
        case .commitOffset(let stream, let group, let offset):
            w.u8(Kind.commitOffset.rawValue)
            w.string(stream)
            w.string(group)
            w.u64(offset)
        case .registerProducer(let name):
            w.u8(Kind.registerProducer.rawValue)
            w.string(name)
        case .producerSend(let producer, let stream, let target, let message, let sequence):
            w.u8(Kind.producerSend.rawValue)
            w.u64(producer.id)
            w.u32(producer.epoch)
            w.u8(stream ? 1 : 0)
            w.string(target)
            w.message(message)
            w.u64(sequence)
        case .lastSequence(let producer, let stream, let target):
            w.u8(Kind.lastSequence.rawValue)
            w.u64(producer)
            w.u8(stream ? 1 : 0)
            w.string(target)
        case .transaction(let operations):
            w.u8(Kind.transaction.rawValue)
            w.u32(UInt32(operations.count))
            for operation in operations {
                switch operation {
                case .publish(let queue, let message):
                    w.u8(1)
                    w.string(queue)
                    w.message(message)
                case .append(let stream, let message):
                    w.u8(2)
                    w.string(stream)
                    w.message(message)
                case .commitOffset(let stream, let group, let offset):
                    w.u8(3)
                    w.string(stream)
                    w.string(group)
                    w.u64(offset)
                }
            }
        }
        return w.bytes
    }

    init(decoding bytes: [UInt8]) throws(ByteReader.Malformed) {
        self = try ByteReader.decodeAll(bytes) { r throws(ByteReader.Malformed) in try Self.decode(&r) }
    }

    private static func decode(_ r: inout ByteReader) throws(ByteReader.Malformed) -> StoreRequest {
        let kind = try r.u8()
        switch Kind(rawValue: kind) {
        case .publish: return .publish(queue: try r.string(), message: try r.message(), persistent: try r.u8() != 0)
        case .append: return .append(stream: try r.string(), message: try r.message())
        case .commitOffset: return .commitOffset(stream: try r.string(), group: try r.string(), offset: try r.u64())
        case .registerProducer: return .registerProducer(name: try r.string())
        case .producerSend:
            let producer = ProducerStamp(id: try r.u64(), epoch: try r.u32())
            return .producerSend(producer: producer, stream: try r.u8() != 0, target: try r.string(),
                                 message: try r.message(), sequence: try r.u64())
        case .lastSequence: return .lastSequence(producer: try r.u64(), stream: try r.u8() != 0, target: try r.string())
        case .transaction:
            let count = Int(try r.u32())
            // Each operation takes at least 5 bytes: a count larger than what is left is malformed, not a
            // reason to reserve memory.
            guard count <= r.remaining / 5 else { throw ByteReader.Malformed(description: "\(count) operations in \(r.remaining) bytes") }
            var operations: [TransactionOperation] = []
            for _ in 0..<count {
                let tag = try r.u8()
                switch tag {
                case 1: operations.append(.publish(queue: try r.string(), message: try r.message()))
                case 2: operations.append(.append(stream: try r.string(), message: try r.message()))
                case 3: operations.append(.commitOffset(stream: try r.string(), group: try r.string(), offset: try r.u64()))
                default: throw ByteReader.Malformed(description: "an unknown transaction operation \(tag)")
                }
            }
            return .transaction(operations)
        case nil: throw ByteReader.Malformed(description: "an unknown request \(kind)")
        }
    }
}

/// The leader's answer to a `StoreRequest`.
enum StoreReply: Equatable, Sendable {
    /// Done: the message id (publish), the offset (append), or 0.
    case done(UInt64)
    /// A producer registered: its id and this instance's epoch.
    case registered(id: UInt64, epoch: UInt32)
    /// An idempotent send that was stored before: the original's id or offset, when known.
    case duplicate(of: UInt64?)
    /// A producer's last sequence for a target (nil: none).
    case sequence(UInt64?)
    /// A committed transaction: its messages' ids and its appends' offsets, in order.
    case committed(messageIDs: [UInt64], offsets: [UInt64])
    /// The leader's error for it, as the queue layer reported it there.
    case failed(QueueError.Code, String, leaderHint: String?, abortReason: QueueError.AbortReason?)

    init(_ error: QueueError) {
        self = .failed(error.code, error.message, leaderHint: error.leaderHint, abortReason: error.abortReason)
    }

    /// The error as the caller on the follower sees it.
    var error: QueueError? {
        guard case .failed(let code, let message, let hint, let reason) = self else { return nil }
        return QueueError(code, "the leader: \(message)", leaderHint: hint, abortReason: reason)
    }

    private enum Tag: UInt8 { case done = 0, registered = 0xF0, duplicate = 0xF1, sequence = 0xF2, committed = 0xF3 }

    var encoded: [UInt8] {
        var w = ByteWriter()
        switch self {
        case .done(let value):
            w.u8(Tag.done.rawValue)
            w.u64(value)
        case .registered(let id, let epoch):
            w.u8(Tag.registered.rawValue)
            w.u64(id)
            w.u32(epoch)
        case .duplicate(let original):
            w.u8(Tag.duplicate.rawValue)
            w.u8(original == nil ? 0 : 1)
            w.u64(original ?? 0)
        case .sequence(let sequence):
            w.u8(Tag.sequence.rawValue)
            w.u8(sequence == nil ? 0 : 1)
            w.u64(sequence ?? 0)
        case .committed(let ids, let offsets):
            w.u8(Tag.committed.rawValue)
            w.u32(UInt32(ids.count))
            for id in ids { w.u64(id) }
            w.u32(UInt32(offsets.count))
            for offset in offsets { w.u64(offset) }
        case .failed(let code, let message, let hint, let reason):
            w.u8(Self.wire(code))
            w.string(message)
            w.u8(hint == nil ? 0 : 1)
            w.string(hint ?? "")
            w.u8(reason == nil ? 0 : reason == .refused ? 1 : 2)
        }
        return w.bytes
    }

    init(decoding bytes: [UInt8]) throws(ByteReader.Malformed) {
        self = try ByteReader.decodeAll(bytes) { r throws(ByteReader.Malformed) in try Self.decode(&r) }
    }

    private static func decode(_ r: inout ByteReader) throws(ByteReader.Malformed) -> StoreReply {
        let tag = try r.u8()
        switch Tag(rawValue: tag) {
        case .done: return .done(try r.u64())
        case .registered: return .registered(id: try r.u64(), epoch: try r.u32())
        case .duplicate:
            let has = try r.u8() != 0
            let original = try r.u64()
            return .duplicate(of: has ? original : nil)
        case .sequence:
            let has = try r.u8() != 0
            let sequence = try r.u64()
            return .sequence(has ? sequence : nil)
        case .committed:
            return .committed(messageIDs: try r.u64s(), offsets: try r.u64s())
        case nil:
            guard let code = Self.code(tag) else { throw ByteReader.Malformed(description: "an unknown error code \(tag)") }
            let message = try r.string()
            let hasHint = try r.u8() != 0
            let hint = try r.string()
            let reason: QueueError.AbortReason?
            switch try r.u8() {
            case 0: reason = nil
            case 1: reason = .refused
            case 2: reason = .leaderChanged
            case let other: throw ByteReader.Malformed(description: "an unknown abort reason \(other)")
            }
            return .failed(code, message, leaderHint: hasHint ? hint : nil, abortReason: reason)
        }
    }

    /// Each code's byte on the wire (never reuse one: replicas of two versions may talk).
    private static func wire(_ code: QueueError.Code) -> UInt8 {
        switch code {
        case .notFound: 1
        case .mismatchedOptions: 2
        case .queueFull: 3
        case .unknownDeliveryTag: 4
        case .cancelled: 5
        case .pendingFull: 6
        case .logFailed: 7
        case .corruption: 8
        case .invalidArgument: 9
        case .closed: 10
        case .transactionAborted: 11
        case .unknownProducer: 12
        case .fenced: 13
        case .outOfSequence: 14
        case .locked: 15
        case .ioFailure: 16
        case .invalidStore: 17
        case .notLeader: 18
        case .notEnoughReplicas: 19
        case .indeterminate: 20
        }
    }

    private static let codes: [UInt8: QueueError.Code] = {
        let all: [QueueError.Code] = [.notFound, .mismatchedOptions, .queueFull, .unknownDeliveryTag, .cancelled,
                                      .pendingFull, .logFailed, .corruption, .invalidArgument, .closed,
                                      .transactionAborted, .unknownProducer, .fenced, .outOfSequence, .locked,
                                      .ioFailure, .invalidStore, .notLeader, .notEnoughReplicas, .indeterminate]
        return Dictionary(uniqueKeysWithValues: all.map { (wire($0), $0) })
    }()

    private static func code(_ byte: UInt8) -> QueueError.Code? { codes[byte] }
}

extension ByteWriter {
    /// A message: its headers (a u16 count of pairs in key order), then its body.
    mutating func message(_ m: Message) {
        headers(m.headers)
        blob(m.body)
    }
}

extension ByteReader {
    mutating func message() throws(Malformed) -> Message { Message(headers: try headers(), body: try blob()) }

    /// A u32 count, then that many u64s.
    mutating func u64s() throws(Malformed) -> [UInt64] {
        let count = Int(try u32())
        guard count <= remaining / 8 else { throw Malformed(description: "\(count) numbers in \(remaining) bytes") }
        return try (0..<count).map { _ throws(Malformed) in try u64() }
    }

    /// Decodes all of `bytes` with `body`, refusing bytes left after it.
    static func decodeAll<T>(_ bytes: [UInt8], _ body: (inout ByteReader) throws(Malformed) -> T) throws(Malformed) -> T {
        try keepingType(Malformed.self) {
            try bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                let value = try body(&reader)
                try reader.expectEnd()
                return value
            }
        }
    }
}
