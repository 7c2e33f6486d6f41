import DequeModule

/// The store's state machine: every queue and stream, derived from the log. `apply` is the only way it
/// changes, for live records (once confirmed, in LSN order) and replayed ones alike. It is a value: a copy
/// is a consistent snapshot for a checkpoint.
struct StoreState: Sendable {
    var queues: [UInt64: QueueIndex] = [:]
    var queueIDs: [String: UInt64] = [:]
    var streams: [UInt64: StreamIndex] = [:]
    var streamIDs: [String: UInt64] = [:]
    /// Idempotent producers by id, and their ids by name.
    var producers: [UInt64: ProducerState] = [:]
    var producerIDs: [String: UInt64] = [:]
    /// Half messages prepared and not yet resolved, by id.
    var halfMessages: [UInt64: HalfMessageEntry] = [:]
    /// Parts of transactions whose commit record has not been applied yet: (LSN, operation) in log order.
    /// Empty between submissions (a transaction is appended as one), so never in a checkpoint.
    var openTransactions: [UInt64: [(lsn: UInt64, record: StoreRecord)]] = [:]
    /// The last LSN applied.
    var appliedLSN: UInt64 = 0

    /// What applying a record did, for the runtime (confirms, deliveries, dispatch).
    enum Effect: Equatable {
        case none
        case declared(id: UInt64)
        /// The new message's id, or nil when the queue refused it (full or gone).
        case published(id: UInt64?)
        case checkedOut([MessageEntry])
        /// How many of the listed messages the record settled (acked, returned or rejected); the rest were no
        /// longer out (already settled by an earlier record).
        case settled(Int)
        case appended(offset: UInt64)
        case relocated(Bool)
        /// A transaction's commit: the effect of each operation in order, or why none was applied.
        case transaction(effects: [Effect], refusal: String?)
        case registered(producer: UInt64, epoch: UInt32)
        /// A stamped record that was stored before: the original's message id or offset when it was the
        /// producer's last one for that target.
        case duplicate(of: UInt64?)
        case stampRefused(StampRefusal)
        /// The half message's id, or nil when its queue is gone.
        case prepared(id: UInt64?)
        case halfResolved(HalfResolution)
    }

    mutating func apply(_ record: StoreRecord, at lsn: UInt64) -> Effect {
        precondition(lsn > appliedLSN, "records are applied in LSN order")
        appliedLSN = lsn
        return change(record, at: lsn)
    }

    /// `apply` of a publish or stream append as a replay reads it (`StoreRecord.payload(in:)`): the same change.
    mutating func apply(_ payload: StoreRecord.Payload, at lsn: UInt64) -> Effect {
        precondition(lsn > appliedLSN, "records are applied in LSN order")
        appliedLSN = lsn
        return payload.kind == .publish ? publish(into: payload.target, bodyBytes: payload.bodyBytes, at: lsn)
            : append(to: payload.target, bodyBytes: payload.bodyBytes, time: payload.time, at: lsn)
    }

    private mutating func publish(into qid: UInt64, bodyBytes: Int, at lsn: UInt64) -> Effect {
        let entry = MessageEntry(id: lsn, bodyLSN: lsn, bodyBytes: UInt32(bodyBytes), deliveries: 0, deathReason: 0)
        return .published(id: enqueue(entry, into: qid) ? lsn : nil)
    }

    private mutating func append(to sid: UInt64, bodyBytes: Int, time: Int64, at lsn: UInt64) -> Effect {
        guard var stream = streams.removeValue(forKey: sid) else { return .none }
        let offset = stream.append(lsn: lsn, bytes: bodyBytes, time: time)
        streams[sid] = stream
        return .appended(offset: offset)
    }

    /// The change a record makes; `lsn` is its own LSN (for a transaction's operation, the LSN of its part
    /// record, applied at the commit's).
    mutating func change(_ record: StoreRecord, at lsn: UInt64) -> Effect {
        switch record {
        case .sessionStart:
            #if QUEUE_BROKEN_NO_RETURN_AT_OPEN  // BROKEN ON PURPOSE (harness check builds only)
            let returning = false
            #else
            let returning = true
            #endif
            // By id, reading each queue's unacked ids out first: holding a copy of a queue while
            // `returnMessages` changes it (or its dead-letter queue) would copy its storage.
            for id in queues.keys.sorted() where returning {
                guard let out = queues[id]?.unacked.keys.sorted() else { continue }
                returnMessages(out, to: id)
            }
            // A transaction without its commit was cut off by the crash that ended the previous session.
            openTransactions.removeAll()
            return .none

        case .declareQueue(let name, let options):
            if let existing = queueIDs[name] { return .declared(id: existing) }
            queueIDs[name] = lsn
            queues[lsn] = QueueIndex(id: lsn, name: name, options: options)
            return .declared(id: lsn)

        case .deleteQueue(let id):
            guard let q = queues.removeValue(forKey: id) else { return .none }
            queueIDs[q.name] = nil
            forgetTarget(id)
            return .none

        case .publish(let qid, _, _, let body):
            return publish(into: qid, bodyBytes: body.count, at: lsn)

        case .checkout(let qid, let consumer, let max):
            return .checkedOut(inQueue(qid) { $0.checkout(max: Int(max), to: consumer) } ?? [])

        case .ack(let qid, let ids):
            return .settled(inQueue(qid) { $0.removeUnacked(ids, acked: true).count } ?? 0)

        case .requeue(let qid, _, let ids):
            return .settled(returnMessages(ids, to: qid))

        case .reject(let qid, let ids):
            let rejected = inQueue(qid) { $0.removeUnacked(ids, acked: false) } ?? []
            for entry in rejected { deadLetter(entry, from: qid, reason: .rejected) }
            return .settled(rejected.count)

        case .relocate(let qid, let id, _, _):
            return .relocated(inQueue(qid) { $0.updateEntry(id) { $0.bodyLSN = lsn } } ?? false)

        case .declareStream(let name, let options):
            if let existing = streamIDs[name] { return .declared(id: existing) }
            streamIDs[name] = lsn
            streams[lsn] = StreamIndex(id: lsn, name: name, options: options)
            return .declared(id: lsn)

        case .deleteStream(let id):
            guard let s = streams.removeValue(forKey: id) else { return .none }
            streamIDs[s.name] = nil
            forgetTarget(id)
            return .none

        case .streamAppend(let sid, let time, _, let body):
            return append(to: sid, bodyBytes: body.count, time: time, at: lsn)

        case .commitOffset(let sid, let group, let offset):
            streams[sid]?.groups[group] = offset
            return .none

        case .trimStream(let sid, let before):
            guard let first = streams[sid]?.firstOffset, let count = streams[sid]?.entries.count, before > first else {
                return .none
            }
            streams[sid]?.removeFirst(Int(min(before - first, UInt64(count))))
            return .none

        case .txPart(let tx, let operation):
            openTransactions[tx, default: []].append((lsn, operation))
            return .none

        case .txCommit(let tx, let parts):
            let operations = openTransactions.removeValue(forKey: tx) ?? []
            #if QUEUE_BROKEN_TX_IGNORES_REFUSAL  // BROKEN ON PURPOSE (harness check builds only)
            let refused: String? = nil
            #else
            let refused = refusal(of: operations, expecting: Int(parts))
            #endif
            if let refusal = refused {
                return .transaction(effects: [], refusal: refusal)
            }
            return .transaction(effects: operations.map { change($0.record, at: $0.lsn) }, refusal: nil)

        case .registerProducer(let name, let time):
            return register(name, time: time, at: lsn)

        case .stamped(let producer, let epoch, let sequence, let operation):
            return applyStamped(operation, producer: producer, epoch: epoch, sequence: sequence, at: lsn)

        case .expireProducer(let producer, let idleSince):
            if let p = producers[producer], p.lastActive <= idleSince {
                producers[producer] = nil
                producerIDs[p.name] = nil
            }
            return .none

        case .prepareHalf(let qid, let time, _, let body):
            guard queues[qid] != nil else { return .prepared(id: nil) }
            halfMessages[lsn] = HalfMessageEntry(
                queue: qid, entry: MessageEntry(id: lsn, bodyLSN: lsn, bodyBytes: UInt32(body.count), deliveries: 0,
                                                deathReason: 0),
                preparedAt: time, checks: 0, lastCheckAt: time)
            #if QUEUE_BROKEN_HALF_VISIBLE_AT_PREPARE  // BROKEN ON PURPOSE (harness check builds only)
            if let half = halfMessages[lsn] { _ = enqueue(half.entry, into: qid) }
            #endif
            return .prepared(id: lsn)

        case .resolveHalf(let id, let outcome):
            return .halfResolved(resolveHalf(id, outcome))

        case .halfChecked(let id, let time):
            halfMessages[id]?.checks &+= 1
            halfMessages[id]?.lastCheckAt = time
            return .none
        }
    }

    /// Runs `change` on queue `qid` (nil when there is none), the index moved out of the dictionary and back.
    /// Not `queues[qid]?.change()`: the dictionary's `_modify` accessor allocates its coroutine frames on the
    /// heap (three `malloc`s per publish, applied under the store's lock). Moved, not copied, so its storage
    /// stays uniquely referenced and changes in place.
    private mutating func inQueue<R>(_ qid: UInt64, _ change: (inout QueueIndex) -> R) -> R? {
        guard var q = queues.removeValue(forKey: qid) else { return nil }
        defer { queues[qid] = q }
        return change(&q)
    }

    /// Appends a message to a queue's ready messages, applying its `maxLength`; false when the queue is gone
    /// or refuses it (`.rejectPublish`). `force` ignores `.rejectPublish` (a queue of last resort).
    mutating func enqueue(_ entry: MessageEntry, into qid: UInt64, force: Bool = false) -> Bool {
        var pushedOut: [MessageEntry] = []
        guard inQueue(qid, { $0.enqueue(entry, force: force, pushedOut: &pushedOut) }) == true else { return false }
        for head in pushedOut { deadLetter(head, from: qid, reason: .maxLength) }
        return true
    }

    /// Puts delivered messages back at the front of their queue, or dead-letters those past the delivery
    /// limit. Returns how many were out.
    @discardableResult
    private mutating func returnMessages(_ ids: [UInt64], to qid: UInt64) -> Int {
        guard let limit = queues[qid].map({ $0.options.deliveryLimit }) else { return 0 }
        let out = inQueue(qid) { $0.removeUnacked(ids, acked: false) } ?? []
        var back: [MessageEntry] = []
        back.reserveCapacity(out.count)
        for entry in out {
            if let limit, Int(entry.deliveries) >= limit {
                deadLetter(entry, from: qid, reason: .deliveryLimit)
            } else {
                back.append(entry)
            }
        }
        queues[qid]?.returned.append(contentsOf: back)
        return out.count
    }

    /// Moves a message (no longer in `qid`) to `qid`'s dead-letter queue, or drops it.
    private mutating func deadLetter(_ entry: MessageEntry, from qid: UInt64, reason: DeadLetterReason) {
        queues[qid]?.liveBytes -= Int(entry.bodyBytes)
        queues[qid]?.deadLettered += 1
        guard let name = queues[qid]?.options.deadLetterQueue, let target = queueIDs[name], target != qid else { return }
        var moved = entry
        moved.deliveries = 0
        moved.deathReason = reason.rawValue
        queues[target]?.appendReady(moved)
        queues[target]?.liveBytes += Int(entry.bodyBytes)
    }

    // MARK: - Reclamation support

    /// The lowest LSN that holds a live message body or retained stream record (nil when none does).
    var lowestLiveLSN: UInt64? {
        var low = UInt64.max
        for q in queues.values { q.forEachEntry { low = min(low, $0.bodyLSN) } }
        for s in streams.values { if let first = s.entries.first { low = min(low, first.lsn) } }
        for h in halfMessages.values { low = min(low, h.entry.bodyLSN) }
        return low == .max ? nil : low
    }

    var liveBytes: Int {
        queues.values.reduce(0) { $0 + $1.liveBytes } + streams.values.reduce(0) { $0 + $1.bytes }
            + halfMessages.values.reduce(0) { $0 + Int($1.entry.bodyBytes) }
    }
}
