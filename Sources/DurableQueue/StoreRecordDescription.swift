/// Store records in words, for tools that show a store's log (`walctl dump` on a store directory).
public enum StoreRecordDescription {
    /// One line saying what the record at `bytes` does ("publish to queue #3, 120-byte body"), or nil when
    /// the bytes are not a store record. Queues and streams are shown by id (the LSN of their declaration).
    public static func describe(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard let record = try? StoreRecord.decode(bytes) else { return nil }
        return record.summary
    }
}

extension StoreRecord {
    var summary: String {
        switch self {
        case .sessionStart(let time): "session start at \(time) ms"
        case .declareQueue(let name, let o): "declare queue '\(name)'" + (o.durable ? "" : " (transient)")
        case .deleteQueue(let q): "delete queue #\(q)"
        case .publish(let q, _, let h, let body): "publish to queue #\(q): \(Self.describe(body, h))"
        case .checkout(let q, let consumer, let max): "checkout from queue #\(q) by consumer \(consumer), at most \(max)"
        case .ack(let q, let ids): "ack on queue #\(q) of \(Self.list(ids))"
        case .requeue(let q, let reason, let ids): "requeue (\(reason)) on queue #\(q) of \(Self.list(ids))"
        case .reject(let q, let ids): "reject on queue #\(q) of \(Self.list(ids))"
        case .relocate(let q, let id, let h, let body): "relocate message \(id) of queue #\(q): \(Self.describe(body, h))"
        case .declareStream(let name, _): "declare stream '\(name)'"
        case .deleteStream(let s): "delete stream #\(s)"
        case .streamAppend(let s, _, let h, let body): "append to stream #\(s): \(Self.describe(body, h))"
        case .commitOffset(let s, let group, let offset): "commit offset \(offset) of group '\(group)' on stream #\(s)"
        case .trimStream(let s, let before): "trim stream #\(s) before offset \(before)"
        case .txPart(let tx, let part): "transaction \(tx) part: \(part.summary)"
        case .txCommit(let tx, let parts): "transaction \(tx) commit of \(parts) part(s)"
        case .registerProducer(let name, _): "register producer '\(name)'"
        case .stamped(let p, let epoch, let seq, let inner): "producer \(p) epoch \(epoch) sequence \(seq): \(inner.summary)"
        case .expireProducer(let p, _): "expire producer \(p) if idle"
        case .prepareHalf(let q, _, let h, let body): "prepare half message for queue #\(q): \(Self.describe(body, h))"
        case .resolveHalf(let id, let outcome): "resolve half message \(id): \(outcome)"
        case .halfChecked(let id, _): "check-back of half message \(id) unanswered"
        }
    }

    private static func describe(_ body: [UInt8], _ headers: [String: String]) -> String {
        "\(body.count)-byte body" + (headers.isEmpty ? "" : ", \(headers.count) header(s)")
    }

    private static func list(_ ids: [UInt64]) -> String {
        ids.count <= 4 ? "message(s) " + ids.map(String.init).joined(separator: ", ")
            : "\(ids.count) messages (\(ids.first!)...\(ids.last!))"
    }
}
