import DurableLog
import LogFormat

/// The messages of the replication stream between a leader and one follower. Byte layout in DESIGN.md
/// ("The stream"): every message is `u32 length` (of what follows it), `u8 type`, the body, and a `u32`
/// CRC32C of type and body; integers little-endian.
package enum ReplicationMessage: Equatable, Sendable {
    /// Follower -> leader, first on a connection and again after each cut: who it is and where its log ends.
    case hello(Hello)
    /// Leader -> follower: the largest epoch in the leader's history at or below the follower's last one, and
    /// the LSN where that epoch ends in the leader's log; nil when the leader's log holds none of them.
    case epochEnd(EpochEnd?)
    /// Follower -> leader: its log agrees with the leader's up to its end, `from`: ship from there.
    case follow(from: LSN)
    /// Leader -> follower: a run of frames as the leader wrote them, and the leader's committed LSN.
    case frames(ShippedFrames, committed: LSN)
    /// Follower -> leader: every record before this LSN is durable on the follower (`fdatasync` returned).
    case durable(through: LSN)
    /// Either way: why the sender ends the connection.
    case refuse(Refusal, String)
    /// Follower -> leader: a write made on the follower, for the leader to append (`id` is the follower's, to
    /// match the answer).
    case forward(id: UInt64, record: [UInt8])
    /// Leader -> follower: what became of forwarded write `id`.
    case forwarded(id: UInt64, ForwardOutcome)
    /// Follower -> leader: a request of the layer above (a store operation made on the follower), opaque to
    /// replication, for the leader's service to carry out (`id` is the follower's, to match the reply).
    case request(id: UInt64, body: [UInt8])
    /// Leader -> follower: the service's reply to request `id`, opaque to replication.
    case reply(id: UInt64, body: [UInt8])
    /// Leader -> follower, in answer to a `follow` from before the leader's first segment: one part of the state
    /// of the layer above that stands in for the records the leader no longer holds, in order.
    case snapshot(SnapshotPart)

    /// One part of a snapshot: where the follower's log is to start, what the state covers, and `bytes` of the
    /// state at `offset`. Every part repeats the description, so the follower checks that they agree.
    package struct SnapshotPart: Equatable, Sendable {
        /// The leader's first segment, where the follower's log starts (empty).
        package var segmentID: SegmentID
        /// The LSN of that segment's first record.
        package var firstLSN: LSN
        /// The state holds the effect of every record through this LSN (at least `firstLSN - 1`).
        package var covers: LSN
        /// The leader's epoch history before `firstLSN`: the follower's own from then on.
        package var epochs: [EpochHistory.Entry]
        /// The state's size in bytes, and where this part's bytes lie in it.
        package var totalBytes: UInt64
        package var offset: UInt64
        package var bytes: [UInt8]

        package init(segmentID: SegmentID, firstLSN: LSN, covers: LSN, epochs: [EpochHistory.Entry],
                     totalBytes: UInt64, offset: UInt64, bytes: [UInt8]) {
            self.segmentID = segmentID
            self.firstLSN = firstLSN
            self.covers = covers
            self.epochs = epochs
            self.totalBytes = totalBytes
            self.offset = offset
            self.bytes = bytes
        }

        /// The same description without the bytes (what a follower keeps of the first part).
        package var withoutBytes: SnapshotPart {
            var copy = self
            copy.bytes = []
            return copy
        }

        /// Whether `other` describes the same snapshot.
        package func describesSameSnapshot(as other: SnapshotPart) -> Bool {
            segmentID == other.segmentID && firstLSN == other.firstLSN && covers == other.covers
                && epochs == other.epochs && totalBytes == other.totalBytes
        }
    }

    /// What became of a forwarded write.
    package enum ForwardOutcome: Equatable, Sendable {
        /// Committed at this LSN (every in-sync replica made it durable).
        case committed(LSN)
        /// Not committed: the leader's error for it (its code says whether anything was written: `.notLeader`
        /// and `.notEnoughReplicas` never, `.indeterminate` maybe).
        case failed(ForwardFailure, String)
    }

    /// The error codes a forwarded write can end with, as sent.
    package enum ForwardFailure: UInt8, Sendable {
        case notLeader = 1, notEnoughReplicas = 2, indeterminate = 3, recordTooLarge = 4, pendingFull = 5,
             logFailed = 6, closed = 7

        /// The code a forwarding follower reports; anything else the leader's log can throw counts as `.logFailed`.
        package init(_ code: WALError.Code) {
            switch code {
            case .notLeader: self = .notLeader
            case .notEnoughReplicas: self = .notEnoughReplicas
            case .indeterminate: self = .indeterminate
            case .recordTooLarge: self = .recordTooLarge
            case .pendingFull: self = .pendingFull
            case .closed: self = .closed
            default: self = .logFailed
            }
        }

        package var code: WALError.Code {
            switch self {
            case .notLeader: .notLeader
            case .notEnoughReplicas: .notEnoughReplicas
            case .indeterminate: .indeterminate
            case .recordTooLarge: .recordTooLarge
            case .pendingFull: .pendingFull
            case .logFailed: .logFailed
            case .closed: .closed
            }
        }
    }

    package struct Hello: Equatable, Sendable {
        package var log: LogIdentity
        package var member: String
        package var incarnation: UInt64
        /// The last epoch in the follower's history (nil when it has none: an empty log).
        package var lastEpoch: UInt64?
        /// The LSN after the last record of the follower's log.
        package var end: LSN

        package init(log: LogIdentity, member: String, incarnation: UInt64, lastEpoch: UInt64?, end: LSN) {
            self.log = log
            self.member = member
            self.incarnation = incarnation
            self.lastEpoch = lastEpoch
            self.end = end
        }
    }

    package struct EpochEnd: Equatable, Sendable {
        package var epoch: UInt64
        package var end: LSN

        package init(epoch: UInt64, end: LSN) {
            self.epoch = epoch
            self.end = end
        }
    }

    /// Why a side ends the connection.
    package enum Refusal: UInt8, Sendable, CaseIterable {
        /// The other side's epoch is older than one this side has seen: a deposed leader, or a follower of one.
        case staleEpoch = 1
        /// The follower's log is another log (its identity is not the leader's).
        case otherLog = 2
        /// The exchange would cut committed records: a bug or a lost disk, never normal operation.
        case cutBelowCommitted = 3
        /// The peer broke the protocol (a message out of turn, frames that do not continue the log).
        case protocolViolation = 4
        /// The sender is not the leader (any more).
        case notLeader = 5
        /// The follower's log failed (a write or sync error): it acknowledges nothing more until reopened.
        case logFailed = 6
    }
}

/// A message that is not a well-formed replication message: the connection is closed, never guessed at.
package struct ReplicationWireError: Error, Equatable, Sendable, CustomStringConvertible {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { "bad replication message: \(reason)" }
}

extension ReplicationMessage {
    /// The largest message either side accepts (a run of frames is at most a few MiB).
    package static let bytesMax = 64 << 20
    static let lengthBytes = 4
    static let checksumBytes = 4

    private enum Kind: UInt8 {
        case hello = 1, epochEnd = 2, follow = 3, frames = 4, durable = 5, refuse = 6, forward = 7, forwarded = 8,
             request = 9, reply = 10, snapshot = 11
    }

    /// Appends the encoded message to `out`.
    package func encode(into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0])  // length, filled in below
        switch self {
        case .hello(let h):
            out.append(Kind.hello.rawValue)
            out.appendLE(h.log.high)
            out.appendLE(h.log.low)
            out.appendString(h.member)
            out.appendLE(h.incarnation)
            out.append(h.lastEpoch == nil ? 0 : 1)
            out.appendLE(h.lastEpoch ?? 0)
            out.appendLE(h.end.rawValue)
        case .epochEnd(let answer):
            out.append(Kind.epochEnd.rawValue)
            out.append(answer == nil ? 0 : 1)
            out.appendLE(answer?.epoch ?? 0)
            out.appendLE(answer?.end.rawValue ?? 0)
        case .follow(let from):
            out.append(Kind.follow.rawValue)
            out.appendLE(from.rawValue)
        case .frames(let run, let committed):
            out.append(Kind.frames.rawValue)
            out.appendLE(run.segmentID.rawValue)
            out.appendLE(UInt64(run.offset))
            out.appendLE(committed.rawValue)
            out.appendLE(UInt32(run.bytes.count))
            out.append(contentsOf: run.bytes)
        case .durable(let through):
            out.append(Kind.durable.rawValue)
            out.appendLE(through.rawValue)
        case .refuse(let reason, let text):
            out.append(Kind.refuse.rawValue)
            out.append(reason.rawValue)
            out.appendString(text)
        case .forward(let id, let record):
            out.append(Kind.forward.rawValue)
            out.appendLE(id)
            out.appendLE(UInt32(record.count))
            out.append(contentsOf: record)
        case .forwarded(let id, let outcome):
            out.append(Kind.forwarded.rawValue)
            out.appendLE(id)
            switch outcome {
            case .committed(let lsn):
                out.append(0)
                out.appendLE(lsn.rawValue)
            case .failed(let failure, let text):
                out.append(failure.rawValue)
                out.appendString(text)
            }
        case .request(let id, let body), .reply(let id, let body):
            if case .request = self { out.append(Kind.request.rawValue) } else { out.append(Kind.reply.rawValue) }
            out.appendLE(id)
            out.appendLE(UInt32(body.count))
            out.append(contentsOf: body)
        case .snapshot(let part):
            out.append(Kind.snapshot.rawValue)
            out.appendLE(part.segmentID.rawValue)
            out.appendLE(part.firstLSN.rawValue)
            out.appendLE(part.covers.rawValue)
            out.appendLE(UInt32(part.epochs.count))
            for entry in part.epochs {
                out.appendLE(entry.epoch)
                out.appendLE(entry.firstLSN.rawValue)
            }
            out.appendLE(part.totalBytes)
            out.appendLE(part.offset)
            out.appendLE(UInt32(part.bytes.count))
            out.append(contentsOf: part.bytes)
        }
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 4)...])) }
        out.appendLE(crc)
        let length = UInt32(out.count - start - Self.lengthBytes)
        withUnsafeBytes(of: length.littleEndian) { out.replaceSubrange(start..<(start + 4), with: $0) }
    }

    /// The message's bytes.
    package var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Decodes the message at the start of `bytes`: the message and the bytes it took, or nil when `bytes` holds
    /// only part of it. Checks the length bound before waiting for the rest and the CRC32C before reading a
    /// field.
    package static func decode(_ bytes: UnsafeRawBufferPointer) throws(ReplicationWireError) -> (ReplicationMessage, Int)? {
        guard bytes.count >= lengthBytes else { return nil }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self)))
        guard length >= 1 + checksumBytes, length <= bytesMax else {
            throw ReplicationWireError("a length of \(length) bytes")
        }
        guard bytes.count >= lengthBytes + length else { return nil }
        let covered = UnsafeRawBufferPointer(rebasing: bytes[lengthBytes..<(lengthBytes + length - checksumBytes)])
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: lengthBytes + length - checksumBytes, as: UInt32.self))
        guard CRC32C.checksum(covered) == stored else { throw ReplicationWireError("checksum mismatch") }
        var reader = Reader(covered.dropFirst())
        guard let kind = Kind(rawValue: covered[0]) else { throw ReplicationWireError("unknown type \(covered[0])") }
        let message: ReplicationMessage
        switch kind {
        case .hello:
            let log = LogIdentity(high: try reader.u64(), low: try reader.u64())
            let member = try reader.string()
            let incarnation = try reader.u64()
            let hasEpoch = try reader.u8()
            let epoch = try reader.u64()
            message = .hello(Hello(log: log, member: member, incarnation: incarnation,
                                   lastEpoch: hasEpoch == 0 ? nil : epoch, end: LSN(try reader.u64())))
        case .epochEnd:
            let has = try reader.u8()
            let epoch = try reader.u64(), end = try reader.u64()
            message = .epochEnd(has == 0 ? nil : EpochEnd(epoch: epoch, end: LSN(end)))
        case .follow:
            message = .follow(from: LSN(try reader.u64()))
        case .frames:
            let segment = SegmentID(try reader.u64())
            let offset = try reader.u64()
            let committed = LSN(try reader.u64())
            let count = Int(try reader.u32())
            let body = try reader.bytes(count)
            guard offset <= UInt64(Int.max) else { throw ReplicationWireError("an offset of \(offset)") }
            message = .frames(ShippedFrames(segmentID: segment, offset: Int(offset), bytes: body), committed: committed)
        case .durable:
            message = .durable(through: LSN(try reader.u64()))
        case .refuse:
            let code = try reader.u8()
            guard let reason = Refusal(rawValue: code) else { throw ReplicationWireError("unknown refusal \(code)") }
            message = .refuse(reason, try reader.string())
        case .forward:
            let id = try reader.u64()
            message = .forward(id: id, record: try reader.bytes(Int(try reader.u32())))
        case .forwarded:
            let id = try reader.u64()
            let code = try reader.u8()
            if code == 0 {
                message = .forwarded(id: id, .committed(LSN(try reader.u64())))
            } else {
                guard let failure = ForwardFailure(rawValue: code) else { throw ReplicationWireError("unknown outcome \(code)") }
                message = .forwarded(id: id, .failed(failure, try reader.string()))
            }
        case .request:
            let id = try reader.u64()
            message = .request(id: id, body: try reader.bytes(Int(try reader.u32())))
        case .reply:
            let id = try reader.u64()
            message = .reply(id: id, body: try reader.bytes(Int(try reader.u32())))
        case .snapshot:
            let segment = SegmentID(try reader.u64())
            let first = LSN(try reader.u64())
            let covers = LSN(try reader.u64())
            let count = Int(try reader.u32())
            guard count <= reader.remaining / 16 else { throw ReplicationWireError("\(count) epochs in a snapshot part") }
            var epochs: [EpochHistory.Entry] = []
            for _ in 0..<count { epochs.append(.init(epoch: try reader.u64(), firstLSN: LSN(try reader.u64()))) }
            let total = try reader.u64(), offset = try reader.u64()
            let bytes = try reader.bytes(Int(try reader.u32()))
            guard offset <= total, UInt64(bytes.count) <= total - offset else {
                throw ReplicationWireError("a snapshot part of \(bytes.count) bytes at \(offset) of \(total)")
            }
            message = .snapshot(SnapshotPart(segmentID: segment, firstLSN: first, covers: covers, epochs: epochs,
                                             totalBytes: total, offset: offset, bytes: bytes))
        }
        guard reader.isAtEnd else { throw ReplicationWireError("\(reader.remaining) bytes after a \(kind) message") }
        return (message, lengthBytes + length)
    }
}

/// Reads little-endian fields from a checked message body, refusing to read past it.
private struct Reader {
    private let bytes: UnsafeRawBufferPointer.SubSequence
    private var at: Int

    init(_ bytes: UnsafeRawBufferPointer.SubSequence) {
        self.bytes = bytes
        at = bytes.startIndex
    }

    var isAtEnd: Bool { at == bytes.endIndex }
    var remaining: Int { bytes.endIndex - at }

    private mutating func take(_ n: Int) throws(ReplicationWireError) -> Int {
        guard n >= 0, remaining >= n else { throw ReplicationWireError("a field runs past the end of the message") }
        defer { at += n }
        return at
    }

    mutating func u8() throws(ReplicationWireError) -> UInt8 { bytes[try take(1)] }

    mutating func u32() throws(ReplicationWireError) -> UInt32 {
        let i = try take(4)
        return UInt32(littleEndian: bytes.base.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }

    mutating func u64() throws(ReplicationWireError) -> UInt64 {
        let i = try take(8)
        return UInt64(littleEndian: bytes.base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }

    mutating func bytes(_ n: Int) throws(ReplicationWireError) -> [UInt8] {
        let i = try take(n)
        return Array(bytes[i..<(i + n)])
    }

    mutating func string() throws(ReplicationWireError) -> String {
        let n = Int(try u32())
        let i = try take(n)
        guard let text = String(validating: bytes[i..<(i + n)], as: UTF8.self) else {
            throw ReplicationWireError("a string that is not UTF-8")
        }
        return text
    }
}

extension [UInt8] {
    fileprivate mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    fileprivate mutating func appendString(_ text: String) {
        let utf8 = Array(text.utf8)
        appendLE(UInt32(utf8.count))
        append(contentsOf: utf8)
    }
}
