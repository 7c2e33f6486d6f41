import DequeModule

/// Work found under the store's lock and done after releasing it: resuming callers, handing out
/// deliveries, submitting follow-up records.
struct Actions {
    var replies: [(Reply, Result<StoreState.Effect, QueueError>)] = []
    var confirms: [(PublisherCore, UInt64, Result<Void, QueueError>)] = []
    /// Consumers waiting for a delivery that is now in their buffer.
    var readers: [(UnsafeContinuation<DeliveryChannel.Next, Never>, PendingDelivery)] = []
    var submissions: [Submission] = []
    /// Consumers' channels to end, with the store's failure when that is why.
    var finished: [(DeliveryChannel, QueueError?)] = []
    var wakeups: [UnsafeContinuation<Void, Never>] = []
    /// Message contents to cache, by the LSN of their record, and acked messages whose contents can go.
    var cached: [(UInt64, Message)] = []
    var uncached: [UInt64] = []
}

/// Everything the store's lock guards: the state machine, the confirms waiting to be applied in LSN order,
/// and the run-time side of queues and consumers.
struct Core {
    var state: StoreState
    /// The LSN the next confirm to apply must carry. Confirms can arrive out of order across log threads;
    /// early ones wait in `stash`.
    var nextApply: UInt64
    var stash: [UInt64: Submission] = [:]
    var failure: QueueError?
    var closed = false
    var runtimes: [UInt64: QueueRuntime] = [:]
    var transientIDs: [String: UInt64] = [:]
    var consumers: [UInt32: ConsumerRuntime] = [:]
    var nextConsumerID: UInt32 = 1
    var nextTransientID: UInt64 = 1 << 63
    var checkpointLSN: UInt64 = 0
    /// When deliveries go out (ack timeouts): `StoreOptions.clock`.
    var clock: any StoreClock = SystemStoreClock()
    /// The background checkpoint or reclamation that failed last, until one succeeds again.
    var maintenanceFailure: MaintenanceFailure?
    var logBytesAtCheckpoint: UInt64 = 0
    /// The size of the checkpoint file on disk (0 without one): it spaces the next (`checkpointSpacingFactor`).
    var checkpointBytes = 0
    var streamWaiters: [UInt64: [UnsafeContinuation<Void, Never>]] = [:]
    var touched: [UInt64] = []
    /// Transaction ids only need to be unique within a session: a new session drops unfinished ones.
    var nextTransactionID: UInt64 = 1
    /// How many message ids an ack, requeue or reject record holds at most (set from `recordBytesMax`).
    var idsPerRecord = 100_000

    func usable() throws(QueueError) {
        if let failure { throw failure }
        if closed { throw QueueError(.closed, "the store is closed") }
    }

    /// The queue's id and whether it is durable.
    func queue(named name: String) throws(QueueError) -> (id: UInt64, durable: Bool) {
        if let id = state.queueIDs[name] { return (id, true) }
        if let id = transientIDs[name] { return (id, false) }
        throw QueueError(.notFound, "no queue named '\(name)'; declare it first")
    }

    /// The queue named `name`, with its runtime (consumers, transient lane), made on first use.
    mutating func queueWithRuntime(named name: String) throws(QueueError) -> (id: UInt64, durable: Bool) {
        let (id, durable) = try queue(named: name)
        if runtimes[id] == nil {
            guard let options = state.queues[id]?.options else {
                throw QueueError(.notFound, "no queue named '\(name)'; declare it first")
            }
            runtimes[id] = QueueRuntime(id: id, name: name, options: options)
        }
        return (id, durable)
    }

    // MARK: - Confirms

    /// A submission's records are durable at `lsn...`: apply it, and any stashed ones that now follow, in order.
    mutating func confirmed(_ submission: Submission, at lsn: UInt64, _ actions: inout Actions) {
        guard lsn == nextApply else {
            stash[lsn] = submission
            return
        }
        applyLive(submission, at: lsn, &actions)
        while let next = stash.removeValue(forKey: nextApply) {
            applyLive(next, at: nextApply, &actions)
        }
    }

    mutating func failed(_ submission: Submission, _ error: QueueError, _ actions: inout Actions) {
        stop(with: error, &actions)
        switch submission.intent {
        case .reply(let c): answer(submission, c, .failure(error), &actions)
        case .confirm(let p, let seq): actions.confirms.append((p, seq, .failure(error)))
        case .settle(_, _, let reply): if let reply { answer(submission, reply, .failure(error), &actions) }
        case .transaction(let reply, _): answer(submission, reply, .failure(error), &actions)
        case .checkout, .none: break
        }
    }

    /// Gives a submission's caller its answer, unless its deadline gave one already.
    private func answer(_ submission: Submission, _ reply: Reply, _ result: Result<StoreState.Effect, QueueError>,
                        _ actions: inout Actions) {
        if submission.claimAnswer() { actions.replies.append((reply, result)) }
    }

    /// The store serves nothing more: every later call fails with `error` (the first one wins).
    mutating func stop(with error: QueueError, _ actions: inout Actions) {
        guard failure == nil else { return }
        failure = error
        // Nothing more will be checked out: every consumer's iteration ends with the failure (a reader
        // waiting for a delivery must not wait forever).
        for c in consumers.values { actions.finished.append((c.channel, error)) }
        // Stream waiters look again and find the failure.
        for waiters in streamWaiters.values { actions.wakeups.append(contentsOf: waiters) }
        streamWaiters.removeAll()
    }

    private mutating func applyLive(_ submission: Submission, at first: UInt64, _ actions: inout Actions) {
        touched.removeAll(keepingCapacity: true)
        var effect = StoreState.Effect.none
        var lsn = first
        for record in submission.records {
            switch record {
            case .txCommit(let tx, _):
                let operations = state.openTransactions[tx] ?? []
                effect = state.apply(record, at: lsn)
                if case .transaction(_, nil) = effect {
                    for op in operations { noteApplied(op.record, at: op.lsn, &actions) }
                }
            case .resolveHalf(let id, let outcome):
                let queue = state.halfMessages[id]?.queue
                effect = state.apply(record, at: lsn)
                if case .moved(let target) = outcome { touch(target) } else if let queue { touch(queue) }
            default:
                effect = state.apply(record, at: lsn)
                noteApplied(record, at: lsn, &actions)
            }
            lsn += 1
        }
        nextApply = lsn
        switch submission.intent {
        case .reply(let c):
            answer(submission, c, .success(effect), &actions)
        case .confirm(let p, let seq):
            guard case .published(let id) = effect else { preconditionFailure("a confirm for \(effect)") }
            if id != nil {
                actions.confirms.append((p, seq, .success(())))
            } else if case .publish(let q, _, _, _) = submission.records.last, state.queues[q] != nil {
                actions.confirms.append((p, seq, .failure(QueueError(.queueFull, "the queue is at its maxLength"))))
            } else {
                actions.confirms.append((p, seq, .failure(QueueError(.notFound, "the queue was deleted"))))
            }
        case .checkout(let cid, let requested):
            guard case .checkedOut(let picked) = effect, case .checkout(let q, _, _) = submission.records[0] else {
                preconditionFailure("a checkout intent for another record")
            }
            runtimes[q]?.reserved -= requested
            handOut(picked, queue: q, consumer: cid, requested: requested, &actions)
        case .settle(let cid, let tags, let reply):
            if var c = consumers.removeValue(forKey: cid) {
                c.markSettled(tags)
                keepOrDrop(c)
            }
            if let reply { answer(submission, reply, .success(effect), &actions) }
        case .transaction(let reply, let claims):
            let committed = if case .transaction(_, nil) = effect { true } else { false }
            for (cid, tags) in claims {
                if committed {
                    if var c = consumers.removeValue(forKey: cid) {
                        c.markSettled(tags)
                        keepOrDrop(c)
                    }
                } else {
                    releaseClaims(tags, of: cid, &actions)
                }
            }
            answer(submission, reply, .success(effect), &actions)
        case .none:
            break
        }
        for q in touched { dispatch(q, &actions) }
    }

    /// Run-time consequences of one applied record: cache its body, note the queues that may deliver now.
    private mutating func noteApplied(_ record: StoreRecord, at lsn: UInt64, _ actions: inout Actions) {
        switch record {
        case .publish(let q, _, let headers, let body):
            actions.cached.append((lsn, Message(headers: headers, body: body)))
            touch(q)
        case .relocate(_, _, let headers, let body):
            actions.cached.append((lsn, Message(headers: headers, body: body)))
        case .streamAppend(let s, _, let headers, let body):
            actions.cached.append((lsn, Message(headers: headers, body: body)))
            if let waiters = streamWaiters.removeValue(forKey: s) { actions.wakeups.append(contentsOf: waiters) }
        case .checkout(let q, _, _):
            touch(q)
        case .ack(let q, let ids):
            touch(q)
            // Their bodies are at their own LSN unless relocated (those simply age out).
            actions.uncached.append(contentsOf: ids)
        case .requeue(let q, _, _), .reject(let q, _):
            touch(q)
            if let dlq = state.queues[q]?.options.deadLetterQueue, let id = state.queueIDs[dlq] { touch(id) }
        case .sessionStart:
            for q in state.queues.keys { touch(q) }
        case .deleteQueue(let q):
            dropRuntime(q, &actions)
        case .deleteStream(let s):
            if let waiters = streamWaiters.removeValue(forKey: s) { actions.wakeups.append(contentsOf: waiters) }
        case .stamped(_, _, _, let operation):
            // A duplicate's body is cached under its own LSN too: harmless, nothing refers to it.
            noteApplied(operation, at: lsn, &actions)
        case .prepareHalf(_, _, let headers, let body):
            actions.cached.append((lsn, Message(headers: headers, body: body)))
        case .declareQueue, .declareStream, .commitOffset, .trimStream, .registerProducer, .expireProducer,
             .halfChecked, .txPart, .txCommit, .resolveHalf:
            // Transaction operations and half message resolutions are noted by `applyLive`, which knows
            // what they apply to.
            break
        }
    }

    private mutating func touch(_ q: UInt64) {
        if !touched.contains(q) { touched.append(q) }
    }

    /// Ends every consumer of a deleted queue.
    mutating func dropRuntime(_ q: UInt64, _ actions: inout Actions) {
        guard let rt = runtimes.removeValue(forKey: q) else { return }
        for cid in rt.consumers {
            if let c = consumers.removeValue(forKey: cid) { actions.finished.append((c.channel, nil)) }
        }
    }

    // MARK: - Deliveries

    /// Gives checked-out messages to their consumer, or sends them back when it is gone.
    private mutating func handOut(_ picked: [MessageEntry], queue q: UInt64, consumer cid: UInt32, requested: Int,
                                  _ actions: inout Actions) {
        guard var c = consumers.removeValue(forKey: cid) else {
            if !picked.isEmpty {
                actions.submissions.append(Submission(
                    records: [.requeue(queue: q, reason: .consumerCancelled, messages: picked.map(\.id))], intent: .none))
            }
            return
        }
        c.requested = 0
        if c.cancelled {
            if !picked.isEmpty {
                actions.submissions.append(Submission(
                    records: [.requeue(queue: q, reason: .consumerCancelled, messages: picked.map(\.id))], intent: .none))
            }
            keepOrDrop(c)
            return
        }
        let now = clock.monotonic
        var batch: [PendingDelivery] = []
        batch.reserveCapacity(picked.count)
        for e in picked {
            let tag = c.add(e, transient: nil, now: now)
            batch.append(PendingDelivery(tag: tag, entry: e, transient: nil))
        }
        if let reader = c.channel.enqueue(batch) { actions.readers.append(reader) }
        consumers[cid] = c
        touch(q)
    }

    /// Keeps a consumer's runtime while it still has deliveries out or a checkout in flight.
    private mutating func keepOrDrop(_ c: ConsumerRuntime) {
        if !c.cancelled || c.held > 0 || c.requested > 0 { consumers[c.id] = c }
    }

    /// Hands transient messages to consumers with credit and starts checkouts of persistent ones.
    mutating func dispatch(_ q: UInt64, _ actions: inout Actions) {
        guard var rt = runtimes.removeValue(forKey: q) else { return }
        defer { runtimes[q] = rt }
        guard !rt.consumers.isEmpty else { return }
        var available = (state.queues[q]?.readyCount ?? 0) - rt.reserved
        let n = rt.consumers.count
        let now = clock.monotonic
        for k in 0..<n {
            let cid = rt.consumers[(rt.nextConsumer + k) % n]
            guard var c = consumers.removeValue(forKey: cid) else { continue }
            var credit = c.credit
            var batch: [PendingDelivery] = []
            while credit > 0, var t = rt.lane.popFirst() {
                t.deliveries &+= 1
                let entry = MessageEntry(id: t.id, bodyLSN: 0, bodyBytes: UInt32(t.message.body.count),
                                         deliveries: t.deliveries, deathReason: 0)
                let tag = c.add(entry, transient: t, now: now)
                batch.append(PendingDelivery(tag: tag, entry: entry, transient: t.message))
                rt.laneUnacked += 1
                credit -= 1
            }
            if credit > 0, available > 0, c.requested == 0 {
                let take = min(credit, available)
                c.requested = take
                rt.reserved += take
                available -= take
                actions.submissions.append(Submission(records: [.checkout(queue: q, consumer: cid, max: UInt32(take))],
                                                      intent: .checkout(consumer: cid, requested: take)))
            }
            if let reader = c.channel.enqueue(batch) { actions.readers.append(reader) }
            consumers[cid] = c
        }
        rt.nextConsumer = (rt.nextConsumer + 1) % n
    }

    // MARK: - Settling

    enum SettleKind { case ack, requeue, reject }

    /// Claims deliveries of a consumer for settling. Transient ones are settled here; the persistent ones'
    /// record is returned (nil when there are none) together with the claimed tags.
    mutating func claim(_ tags: [UInt64], of cid: UInt32, as kind: SettleKind, reason: ReturnReason,
                        _ actions: inout Actions) -> Submission? {
        guard var c = consumers.removeValue(forKey: cid) else { return nil }
        var ids: [UInt64] = []
        var durableTags: [UInt64] = []
        var transientTags: [UInt64] = []
        for tag in tags {
            guard let i = c.index(of: tag), c.slots[i].state == .out else { continue }
            c.beginSettling(at: i)
            if let t = c.slots[i].transient {
                transientTags.append(tag)
                runtimes[c.queue]?.laneUnacked -= 1
                if kind == .requeue, runtimes[c.queue] != nil {
                    runtimes[c.queue]?.lane.prepend(t)
                    touch(c.queue)
                }
            } else {
                durableTags.append(tag)
                ids.append(c.slots[i].entry.id)
            }
        }
        c.markSettled(transientTags)
        let queue = c.queue
        consumers[cid] = c
        // The claimed durable deliveries no longer count against prefetch either, but the caller dispatches
        // only after appending their settlement record: a checkout appended before a requeue would take
        // the messages behind the returned ones.
        if !transientTags.isEmpty { dispatch(queue, &actions) }
        guard !ids.isEmpty else { return nil }
        // One record per `idsPerRecord` ids, so that each fits a log record; one submission applies them together.
        let records: [StoreRecord] = stride(from: 0, to: ids.count, by: idsPerRecord).map { start in
            let part = Array(ids[start..<min(start + idsPerRecord, ids.count)])
            return switch kind {
            case .ack: .ack(queue: queue, messages: part)
            case .requeue: .requeue(queue: queue, reason: reason, messages: part)
            case .reject: .reject(queue: queue, messages: part)
            }
        }
        return Submission(records: records, intent: .settle(consumer: cid, tags: durableTags, reply: nil))
    }

    /// The tags `ack`/`nack` with these arguments settle; throws when `tag` is not outstanding.
    func tagsToSettle(_ tag: UInt64, multiple: Bool, of cid: UInt32) throws(QueueError) -> [UInt64] {
        guard let c = consumers[cid], !c.cancelled else {
            throw QueueError(.cancelled, "the consumer was cancelled; its deliveries went back to the queue")
        }
        guard let i = c.index(of: tag), c.slots[i].state == .out else {
            throw QueueError(.unknownDeliveryTag, "delivery tag \(tag) is not outstanding on this consumer (already "
                             + "settled, or returned to the queue after its ack timeout)")
        }
        guard multiple else { return [tag] }
        return c.slots[...i].filter { $0.state == .out }.map(\.tag)
    }

    /// Claims deliveries for a transaction's ack: they stay out (no timeout returns them, no other ack can
    /// settle them) until the transaction commits or is rolled back. Returns the ack record's operation.
    mutating func claimForTransaction(_ tag: UInt64, multiple: Bool, of cid: UInt32) throws(QueueError)
        -> (tags: [UInt64], operation: StoreRecord) {
        let tags = try tagsToSettle(tag, multiple: multiple, of: cid)
        // `tagsToSettle` found the consumer and a slot for every tag.
        guard var c = consumers[cid] else { throw QueueError(.cancelled, "the consumer was cancelled") }
        let slots = tags.compactMap { c.index(of: $0) }
        var ids: [UInt64] = []
        for i in slots {
            guard c.slots[i].transient == nil else {
                throw QueueError(.invalidArgument, "delivery \(c.slots[i].tag) is a transient message: ack it outside the transaction")
            }
            ids.append(c.slots[i].entry.id)
        }
        for i in slots { c.beginSettling(at: i) }
        consumers[cid] = c
        return (tags, .ack(queue: c.queue, messages: ids))
    }

    /// Gives deliveries claimed by a transaction that did not commit back to their consumer (or to the queue,
    /// when the consumer was cancelled meanwhile).
    mutating func releaseClaims(_ tags: [UInt64], of cid: UInt32, _ actions: inout Actions) {
        guard var c = consumers.removeValue(forKey: cid) else { return }
        for tag in tags {
            if let i = c.index(of: tag), c.slots[i].state == .settling { c.cancelSettling(at: i) }
        }
        let cancelled = c.cancelled
        consumers[cid] = c
        if cancelled, let s = claim(tags, of: cid, as: .requeue, reason: .consumerCancelled, &actions) {
            actions.submissions.append(s)
            dispatch(c.queue, &actions)
        }
    }

    /// Cancels a consumer: no more deliveries, its unsettled ones go back to the queue.
    mutating func cancel(_ cid: UInt32, _ actions: inout Actions) {
        guard var c = consumers.removeValue(forKey: cid), !c.cancelled else { return }
        c.cancelled = true
        actions.finished.append((c.channel, nil))
        runtimes[c.queue]?.consumers.removeAll { $0 == cid }
        let out = c.slots.filter { $0.state == .out }.map(\.tag)
        consumers[cid] = c
        if let s = claim(out, of: cid, as: .requeue, reason: .consumerCancelled, &actions) {
            actions.submissions.append(s)
            dispatch(c.queue, &actions)  // other consumers: after the returns, in submission order
        }
        if let c = consumers.removeValue(forKey: cid) { keepOrDrop(c) }
    }

    /// Returns deliveries whose ack timeout passed.
    mutating func expireDeliveries(now: ContinuousClock.Instant, _ actions: inout Actions) {
        for cid in Array(consumers.keys) {
            guard let c = consumers[cid], !c.cancelled,
                  let timeout = state.queues[c.queue]?.options.ackTimeout ?? runtimes[c.queue]?.options.ackTimeout
            else { continue }
            let late = c.slots.filter { $0.state == .out && $0.deliveredAt + timeout <= now }.map(\.tag)
            guard !late.isEmpty else { continue }
            if let s = claim(late, of: cid, as: .requeue, reason: .ackTimeout, &actions) {
                actions.submissions.append(s)
                dispatch(c.queue, &actions)
            }
        }
    }
}
