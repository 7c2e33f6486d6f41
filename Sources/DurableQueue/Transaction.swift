import LogFormat
import DurableLog
import Synchronization

/// A group of publishes, stream appends, offset commits and acks that become durable and visible all at
/// once (`commit`) or not at all (`rollback`, or dropping it). Nothing is written before `commit`; the
/// commit appends every operation and a commit record as one submission, so it costs about one group
/// commit, and recovery applies the operations only when it finds the commit record (a transaction larger
/// than one frame spans several; a crash between them leaves none of it).
///
/// Acking in a transaction claims the delivery at once: no ack timeout or other ack settles it meanwhile,
/// and a rollback gives it back to the consumer. With the input's ack and the outputs' publishes in one
/// transaction, consume-transform-produce runs exactly once inside the store.
public final class Transaction: Sendable {
    let store: QueueStore
    let id: UInt64
    private let state = Mutex(State())

    private struct State {
        var operations: [StoreRecord] = []
        var encoded: [[UInt8]] = []
        var bytes = 0
        /// Deliveries claimed by acks, by consumer.
        var claims: [UInt32: [UInt64]] = [:]
        var finished = false
    }

    init(store: QueueStore, id: UInt64) {
        self.store = store
        self.id = id
    }

    deinit { rollback() }

    /// Adds a persistent publish to a durable queue.
    public func publish(to queue: String, _ message: Message) throws(QueueError) {
        try store.checkFits(message)
        let qid = try store.durableQueueID(queue, for: "transactions")
        try add(.publish(queue: qid, time: store.options.clock.wallMilliseconds, headers: message.headers, body: message.body))
    }

    /// Adds a stream append.
    public func append(to stream: String, _ message: Message) throws(QueueError) {
        try store.checkFits(message)
        let sid = try store.streamID(stream)
        try add(.streamAppend(stream: sid, time: store.options.clock.wallMilliseconds, headers: message.headers, body: message.body))
    }

    /// Adds a consumer group's offset commit.
    public func commitOffset(stream: String, group: String, offset: StreamOffset) throws(QueueError) {
        let sid = try store.streamID(stream)
        try add(.commitOffset(stream: sid, group: group, offset: offset.rawValue))
    }

    /// Adds the ack of delivery `tag` of `consumer` (with `multiple`, of every outstanding one up to it).
    /// The deliveries are claimed now and settled by the commit.
    public func ack(_ tag: DeliveryTag, on consumer: Consumer, multiple: Bool = false) throws(QueueError) {
        let cid = consumer.id
        try state.withLock { s throws(QueueError) in
            guard !s.finished else { throw Self.finishedError }
            let (tags, operation) = try store.core.withLock { c throws(QueueError) in
                try c.usable()
                return try c.claimForTransaction(tag.rawValue, multiple: multiple, of: cid)
            }
            let added = Result { () throws(QueueError) in
                try Self.append(operation, to: &s, id: id, limits: store.options.log)
            }
            if case .success = added { s.claims[cid, default: []].append(contentsOf: tags) }
            // Added: the acked deliveries no longer count against prefetch, the consumer may get more
            // meanwhile. Refused: they are out with the consumer again.
            var actions = Actions()
            store.core.withLock { c in
                if case .failure = added { c.releaseClaims(tags, of: cid, &actions) }
                if let queue = c.consumers[cid]?.queue { c.dispatch(queue, &actions) }
            }
            store.run(actions)
            try added.get()
        }
    }

    /// Makes every operation durable and visible at once; returns after the `fdatasync` that covers them.
    /// - Returns: the ids of the published messages and the offsets of the stream appends, in the order
    ///   they were added.
    /// - Throws: `.transactionAborted` when the store refused it whole (none of it applied; acked deliveries
    ///   are out with their consumer again), or when the node stopped leading before the commit was written
    ///   (`abortReason` `.leaderChanged`); `.indeterminate` when it stopped leading after (a new leader may hold
    ///   it); `.invalidArgument` when it exceeds the log's pending buffer; `.logFailed`.
    @discardableResult
    public func commit() async throws(QueueError) -> TransactionResult {
        let (operations, encoded, claims) = try state.withLock { s throws(QueueError) in
            guard !s.finished else { throw Self.finishedError }
            s.finished = true
            return (s.operations, s.encoded, s.claims)
        }
        guard !operations.isEmpty else { return TransactionResult(messageIDs: [], offsets: []) }
        let commit = StoreRecord.txCommit(tx: id, parts: UInt32(operations.count))
        let records = operations.map { StoreRecord.txPart(tx: id, $0) } + [commit]
        let all = RecordsToAppend(encoded: encoded + [commit.encode()])
        let effect: StoreState.Effect
        do {
            effect = try await store.perform(records, encoded: all) { c in
                Submission(records: records, intent: .transaction(reply: c, claims: claims))
            }
        } catch where error.code == .notLeader {
            // Refused before anything was written: the store stopped serving when its node stopped leading.
            throw QueueError(.transactionAborted, "the leader changed before the transaction was committed; nothing "
                             + "of it was written: \(error.message)", leaderHint: error.leaderHint, abortReason: .leaderChanged)
        }
        guard case .transaction(let effects, let refusal) = effect else { preconditionFailure("\(effect)") }
        if let refusal {
            throw QueueError(.transactionAborted, "the transaction was not applied: \(refusal)", abortReason: .refused)
        }
        var result = TransactionResult(messageIDs: [], offsets: [])
        for e in effects {
            switch e {
            case .published(let id?): result.messageIDs.append(MessageID(rawValue: id))
            case .appended(let offset): result.offsets.append(StreamOffset(rawValue: offset))
            default: break
            }
        }
        return result
    }

    /// Discards the operations; acked deliveries are out with their consumer again. Does nothing after a
    /// commit.
    public func rollback() {
        let claims: [UInt32: [UInt64]] = state.withLock { s in
            guard !s.finished else { return [:] }
            s.finished = true
            defer { s.claims = [:] }
            return s.claims
        }
        guard !claims.isEmpty else { return }
        var actions = Actions()
        store.core.withLock { c in
            for (cid, tags) in claims { c.releaseClaims(tags, of: cid, &actions) }
        }
        store.run(actions)
    }

    private func add(_ operation: StoreRecord) throws(QueueError) {
        try state.withLock { s throws(QueueError) in
            guard !s.finished else { throw Self.finishedError }
            try Self.append(operation, to: &s, id: id, limits: store.options.log)
        }
    }

    /// Adds an operation, unless the transaction (with its commit record) would no longer fit the log's
    /// pending buffer, or the operation one record.
    private static func append(_ operation: StoreRecord, to s: inout State, id: UInt64, limits: LogOptions) throws(QueueError) {
        let bytes = StoreRecord.txPart(tx: id, operation).encode()
        guard bytes.count <= limits.recordBytesMax else {
            throw QueueError(.invalidArgument, "an operation of \(bytes.count) bytes does not fit one log record "
                             + "(recordBytesMax \(limits.recordBytesMax)); ack fewer deliveries at once")
        }
        let total = s.bytes + bytes.count + BatchPayload.lengthPrefixBytes
        guard total + 64 <= limits.pendingBytesMax, s.encoded.count + 2 <= limits.pendingRecordsMax else {
            throw QueueError(.invalidArgument, "a transaction must fit the log's pending buffer "
                             + "(pendingBytesMax \(limits.pendingBytesMax), pendingRecordsMax \(limits.pendingRecordsMax))")
        }
        s.operations.append(operation)
        s.encoded.append(bytes)
        s.bytes = total
    }

    private static var finishedError: QueueError {
        QueueError(.invalidArgument, "the transaction was committed or rolled back already; start a new one")
    }
}

/// What a committed transaction stored.
public struct TransactionResult: Sendable, Equatable {
    /// Ids of the published messages, in the order of the publishes.
    public var messageIDs: [MessageID]
    /// Offsets of the stream appends, in the order of the appends.
    public var offsets: [StreamOffset]

    package init(messageIDs: [MessageID], offsets: [StreamOffset]) {
        self.messageIDs = messageIDs
        self.offsets = offsets
    }
}

extension QueueStore {
    /// Starts a transaction (see `Transaction`).
    public func transaction() -> Transaction {
        let id = core.withLock { c in
            defer { c.nextTransactionID += 1 }
            return c.nextTransactionID
        }
        return Transaction(store: self, id: id)
    }
}
