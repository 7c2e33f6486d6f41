/// One queued message in memory: where its body is in the log, not the body itself (24 bytes).
struct MessageEntry: Sendable, Equatable {
    /// The message's identity: the LSN of its publish record. Stable for its whole life.
    var id: UInt64
    /// The LSN of the record that holds its body now (the publish record, or a later relocate copy).
    var bodyLSN: UInt64
    var bodyBytes: UInt32
    /// How many times it was handed to a consumer.
    var deliveries: UInt16
    /// Why it was dead-lettered into this queue (`DeadLetterReason`), 0 if it was not.
    var deathReason: UInt8
}

/// Why a message was moved to a dead-letter queue (or dropped when the queue has none).
public enum DeadLetterReason: UInt8, Sendable {
    /// Rejected (`nack`/`reject`) without requeue.
    case rejected = 1
    /// Returned after its delivery limit.
    case deliveryLimit = 2
    /// Pushed out of a full queue (`maxLength` with `.dropHead`).
    case maxLength = 3
    /// A half message whose check-backs all went unanswered, moved to `HalfMessageOptions.unresolvedQueue`.
    case halfMessageUnresolved = 4
}

/// A durable queue's derived state: its ready messages in delivery order and those out with consumers.
struct QueueIndex: Sendable {
    let id: UInt64
    let name: String
    let options: QueueOptions
    /// Returned messages, delivered before `ready` in the order they came back.
    var returned: ChunkedDeque<MessageEntry> = []
    /// Published (or dead-lettered into this queue, or committed half messages) and not yet delivered, in
    /// that order. Appended only through `appendReady`, replaced only through `replaceReady`, so that
    /// `readyInIDOrder` stays true.
    private(set) var ready: ChunkedDeque<MessageEntry> = []
    /// Whether `ready` is in id order, as a queue that only takes publishes is: then a binary search finds any
    /// message in it or proves it absent. Dead-lettered arrivals and committed half messages keep their older
    /// ids and break the order.
    private(set) var readyInIDOrder = true
    /// Delivered and neither acked nor returned: the consumer id each is out with.
    var unacked: [UInt64: (entry: MessageEntry, consumer: UInt32)] = [:]
    /// Payload bytes of everything above (what reclamation must keep).
    var liveBytes = 0
    var deadLettered: UInt64 = 0

    var readyCount: Int { returned.count + ready.count }

    /// Appends a ready message, applying `maxLength`: false when `.rejectPublish` refuses it (unless `force`),
    /// and with `.dropHead` the oldest ready messages it pushes out, in `pushedOut` (still counted in `liveBytes`
    /// here: the caller dead-letters them).
    mutating func enqueue(_ entry: MessageEntry, force: Bool, pushedOut: inout [MessageEntry]) -> Bool {
        if !force, let max = options.maxLength, options.overflow == .rejectPublish, readyCount >= max { return false }
        appendReady(entry)
        liveBytes += Int(entry.bodyBytes)
        if let max = options.maxLength, options.overflow == .dropHead {
            while readyCount > max, let head = popReady() { pushedOut.append(head) }
        }
        return true
    }

    /// Appends to `ready` (no `maxLength`, no byte accounting: the callers do both).
    mutating func appendReady(_ entry: MessageEntry) {
        if let last = ready.last, entry.id <= last.id { readyInIDOrder = false }
        ready.append(entry)
    }

    /// Replaces `ready` whole (a checkpoint's decode, salvage's filter), learning its order (`inIDOrder`, when
    /// the caller saw it already, is trusted).
    mutating func replaceReady(with entries: ChunkedDeque<MessageEntry>, inIDOrder: Bool? = nil) {
        ready = entries
        readyInIDOrder = inIDOrder ?? zip(entries, entries.dropFirst()).allSatisfy { $0.id < $1.id }
    }

    /// Takes the next ready message.
    mutating func popReady() -> MessageEntry? {
        if let e = returned.popFirst() { return e }
        return ready.popFirst()
    }

    /// Takes up to `max` ready messages out to `consumer`, counting the delivery; returns them in order.
    mutating func checkout(max: Int, to consumer: UInt32) -> [MessageEntry] {
        var picked: [MessageEntry] = []
        picked.reserveCapacity(Swift.min(max, readyCount))
        while picked.count < max, var e = popReady() {
            e.deliveries &+= 1
            unacked[e.id] = (e, consumer)
            picked.append(e)
        }
        return picked
    }

    /// Takes the delivered messages among `ids` out (an ack, a reject or a return); ids not out are skipped.
    /// `acked` also drops their bytes from `liveBytes` (the others move elsewhere and the caller accounts for
    /// them).
    mutating func removeUnacked(_ ids: [UInt64], acked: Bool) -> [MessageEntry] {
        var removed: [MessageEntry] = []
        removed.reserveCapacity(acked ? 0 : ids.count)
        for id in ids {
            guard let u = unacked.removeValue(forKey: id) else { continue }
            if acked { liveBytes -= Int(u.entry.bodyBytes) }
            removed.append(u.entry)
        }
        return removed
    }

    /// Applies `change` to the entry with id `id` wherever it is; false when the queue does not hold it.
    mutating func updateEntry(_ id: UInt64, _ change: (inout MessageEntry) -> Void) -> Bool {
        if var u = unacked[id] {
            change(&u.entry)
            unacked[id] = u
            return true
        }
        if let i = readyIndex(of: id) {
            change(&ready[i])
            return true
        }
        if let i = returned.firstIndex(where: { $0.id == id }) {
            change(&returned[i])
            return true
        }
        return false
    }

    /// Where message `id` is in `ready`, if it is there. In id order (`readyInIDOrder`) a binary search decides,
    /// also that it is absent: a relocation of a message acked or returned meanwhile scanned all of a deep
    /// queue, under the store's lock. Out of order, the message is looked for outward from where the search
    /// ended (such a queue is mostly in order locally), on both sides until both ends are reached.
    private func readyIndex(of id: UInt64) -> Int? {
        var low = 0, high = ready.count
        while low < high {
            let mid = (low + high) / 2
            if ready[mid].id < id { low = mid + 1 } else { high = mid }
        }
        if low < ready.count, ready[low].id == id { return low }
        #if QUEUE_BROKEN_BINARY_SEARCH_TRUSTED_OUT_OF_ORDER  // BROKEN ON PURPOSE (harness check builds only)
        return nil
        #else
        guard !readyInIDOrder, !ready.isEmpty else { return nil }
        for distance in 1...ready.count {
            let after = low + distance, before = low - distance
            if after < ready.count, ready[after].id == id { return after }
            if before >= 0, ready[before].id == id { return before }
            if after >= ready.count && before <= 0 { break }
        }
        return nil
        #endif
    }

    /// Every message the queue holds, in no particular order.
    func forEachEntry(_ body: (MessageEntry) -> Void) {
        for e in returned { body(e) }
        for e in ready { body(e) }
        for u in unacked.values { body(u.entry) }
    }

    /// Sets `liveBytes` from the entries it holds (after entries were taken out wholesale).
    mutating func recomputeLiveBytes() {
        var bytes = 0
        forEachEntry { bytes += Int($0.bodyBytes) }
        liveBytes = bytes
    }
}

/// A stream's derived state: where each retained record is, and the consumer groups' committed offsets.
struct StreamIndex: Sendable {
    /// Appends a record and applies size retention (which keeps at least the newest record); returns its offset.
    mutating func append(lsn: UInt64, bytes count: Int, time: Int64) -> UInt64 {
        let offset = nextOffset
        entries.append(.init(lsn: lsn, bytes: UInt32(count), time: time))
        bytes += count
        if let max = options.maxBytes {
            while bytes > max, entries.count > 1 { removeFirst(1) }
        }
        return offset
    }

    /// What `streamInfo` and the inspector show of it.
    var info: StreamInfo {
        StreamInfo(name: name, firstOffset: StreamOffset(rawValue: firstOffset), nextOffset: StreamOffset(rawValue: nextOffset),
                   bytes: bytes, committedOffsets: groups.mapValues(StreamOffset.init(rawValue:)))
    }

    struct Entry: Sendable, Equatable {
        var lsn: UInt64
        var bytes: UInt32
        var time: Int64
    }

    let id: UInt64
    let name: String
    let options: StreamOptions
    /// The offset of `entries.first`; offsets are dense and never reused.
    var firstOffset: UInt64 = 0
    /// In chunks, as a queue's entries are: a checkpoint's copy shares them (see `ChunkedDeque`).
    var entries: ChunkedDeque<Entry> = []
    var bytes = 0
    var groups: [String: UInt64] = [:]

    var nextOffset: UInt64 { firstOffset + UInt64(entries.count) }

    mutating func removeFirst(_ n: Int) {
        for _ in 0..<min(n, entries.count) {
            guard let first = entries.popFirst() else { return }
            bytes -= Int(first.bytes)
            firstOffset += 1
        }
    }
}
