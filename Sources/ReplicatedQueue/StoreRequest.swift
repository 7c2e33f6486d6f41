import DurableQueue

/// A write made on a follower, as it travels to the leader (in a replication `request` message), and the
/// leader's reply. Little-endian; strings and bodies are a u32 length and the bytes; headers a u16 count and
/// the pairs in key order.
enum StoreRequest: Equatable, Sendable {
    case publish(queue: String, message: Message, persistent: Bool)
    case append(stream: String, message: Message)
    case commitOffset(stream: String, group: String, offset: UInt64)

    private enum Kind: UInt8 { case publish = 1, append = 2, commitOffset = 3 }

    var encoded: [UInt8] {
        var w = WireWriter()
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
        }
        return w.bytes
    }

    init(decoding bytes: [UInt8]) throws(WireReader.Malformed) {
        var r = WireReader(bytes)
        let kind = try r.u8()
        switch Kind(rawValue: kind) {
        case .publish: self = .publish(queue: try r.string(), message: try r.message(), persistent: try r.u8() != 0)
        case .append: self = .append(stream: try r.string(), message: try r.message())
        case .commitOffset: self = .commitOffset(stream: try r.string(), group: try r.string(), offset: try r.u64())
        case nil: throw WireReader.Malformed(description: "an unknown request \(kind)")
        }
        try r.expectEnd()
    }
}

/// The leader's answer to a `StoreRequest`.
enum StoreReply: Equatable, Sendable {
    /// Done: the message id (publish), the offset (append), or 0.
    case done(UInt64)
    /// The leader's error for it, as the queue layer reported it there.
    case failed(QueueError.Code, String, leaderHint: String?)

    init(_ error: QueueError) { self = .failed(error.code, error.message, leaderHint: error.leaderHint) }

    /// The error as the caller on the follower sees it.
    var error: QueueError? {
        guard case .failed(let code, let message, let hint) = self else { return nil }
        return QueueError(code, "the leader: \(message)", leaderHint: hint)
    }

    var encoded: [UInt8] {
        var w = WireWriter()
        switch self {
        case .done(let value):
            w.u8(0)
            w.u64(value)
        case .failed(let code, let message, let hint):
            w.u8(Self.wire(code))
            w.string(message)
            w.u8(hint == nil ? 0 : 1)
            w.string(hint ?? "")
        }
        return w.bytes
    }

    init(decoding bytes: [UInt8]) throws(WireReader.Malformed) {
        var r = WireReader(bytes)
        let tag = try r.u8()
        if tag == 0 {
            self = .done(try r.u64())
        } else {
            guard let code = Self.code(tag) else { throw WireReader.Malformed(description: "an unknown error code \(tag)") }
            let message = try r.string()
            let hasHint = try r.u8() != 0
            let hint = try r.string()
            self = .failed(code, message, leaderHint: hasHint ? hint : nil)
        }
        try r.expectEnd()
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

struct WireWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func blob(_ v: [UInt8]) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }

    mutating func string(_ v: String) { blob(Array(v.utf8)) }

    mutating func message(_ m: Message) {
        u16(UInt16(m.headers.count))
        for (key, value) in m.headers.sorted(by: { $0.key < $1.key }) {
            string(key)
            string(value)
        }
        blob(m.body)
    }
}

struct WireReader {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func take(_ n: Int) throws(Malformed) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else {
            throw Malformed(description: "needs \(n) bytes at offset \(offset), has \(bytes.count - offset)")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(Malformed) -> T {
        let raw = try take(MemoryLayout<T>.size)
        return raw.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    mutating func u8() throws(Malformed) -> UInt8 { try integer(UInt8.self) }
    mutating func u16() throws(Malformed) -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws(Malformed) -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws(Malformed) -> UInt64 { try integer(UInt64.self) }

    mutating func blob() throws(Malformed) -> [UInt8] { Array(try take(Int(try u32()))) }

    mutating func string() throws(Malformed) -> String {
        let raw = try blob()
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw Malformed(description: "a string that is not UTF-8 before offset \(offset)")
        }
        return s
    }

    mutating func message() throws(Malformed) -> Message {
        var headers: [String: String] = [:]
        for _ in 0..<Int(try u16()) {
            let key = try string()
            headers[key] = try string()
        }
        return Message(headers: headers, body: try blob())
    }

    mutating func expectEnd() throws(Malformed) {
        guard offset == bytes.count else { throw Malformed(description: "\(bytes.count - offset) unexpected bytes at the end") }
    }
}
