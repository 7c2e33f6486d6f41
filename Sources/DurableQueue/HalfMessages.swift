/// Half messages (RocketMQ's transactional messages): a message stored durably but invisible until the
/// application commits it, after its local transaction succeeded, or rolls it back. If neither arrives
/// (the application crashed, the call was lost), the store asks the application's checker, again and again,
/// and finally rolls the message back (or moves it to a queue of last resort). Neither commit nor rollback
/// copies the message: its index entry moves into the queue or is dropped.
extension QueueStore {
    /// Stores a half message for `queue` and returns its id once durable. Consumers do not see it until
    /// `commitHalfMessage`.
    /// - Throws: `.notFound`, `.invalidArgument` (transient queue, too large), `.logFailed`. When it throws,
    ///   the message is not stored.
    public func prepare(to queue: String, _ message: Message) async throws(QueueError) -> HalfMessageID {
        try checkFits(message)
        let qid = try durableQueueID(queue, for: "half messages")
        let effect = try await perform([.prepareHalf(queue: qid, time: options.clock.wallMilliseconds,
                                                     headers: message.headers, body: message.body)])
        guard case .prepared(let id?) = effect else { throw QueueError(.notFound, "queue '\(queue)' was deleted") }
        return HalfMessageID(rawValue: id)
    }

    /// Makes the half message visible in its queue; durable when it returns.
    /// - Throws: `.notFound` when it is not pending (committed or rolled back already, by a call or a
    ///   check-back) or its queue was deleted (the message is dropped); `.queueFull` (`maxLength` with
    ///   `.rejectPublish`; it stays pending, retry).
    public func commitHalfMessage(_ id: HalfMessageID) async throws(QueueError) {
        try await resolveHalfMessage(id.rawValue, .commit)
    }

    /// Discards the half message; durable when it returns.
    /// - Throws: `.notFound` when it is not pending (committed or rolled back already).
    public func rollbackHalfMessage(_ id: HalfMessageID) async throws(QueueError) {
        try await resolveHalfMessage(id.rawValue, .rollback)
    }

    private func resolveHalfMessage(_ id: UInt64, _ outcome: StoreRecord.HalfOutcome) async throws(QueueError) {
        try core.withLock { c throws(QueueError) in
            try c.usable()
            guard c.state.halfMessages[id] != nil else { throw Self.notPending(id) }
        }
        let effect = try await perform([.resolveHalf(message: id, outcome)])
        switch effect {
        case .halfResolved(.committed), .halfResolved(.rolledBack): return
        case .halfResolved(.queueFull): throw QueueError(.queueFull, "half message \(id)'s queue is at its maxLength; it is still pending")
        case .halfResolved(.queueGone): throw QueueError(.notFound, "half message \(id)'s queue was deleted; the message went with it")
        default: throw Self.notPending(id)
        }
    }

    private static func notPending(_ id: UInt64) -> QueueError {
        QueueError(.notFound, "half message \(id) is not pending: it was committed or rolled back already (by an "
                   + "earlier call or a check-back)")
    }

    /// The pending half messages, oldest first.
    public func halfMessages() -> [HalfMessageInfo] {
        core.withLock { c in
            c.state.halfMessages.sorted { $0.key < $1.key }.map { id, h in
                HalfMessageInfo(id: HalfMessageID(rawValue: id), queue: c.state.queues[h.queue]?.name ?? "", checks: Int(h.checks),
                                       preparedAt: h.preparedAt)
            }
        }
    }

    /// Sets (or removes) the application's check-back handler. Without one, pending half messages wait.
    public func setHalfMessageChecker(_ checker: HalfMessageChecker?) {
        halfMessageChecker.withLock { $0 = checker }
    }

    /// Runs the check-backs that are due now (maintenance does this on its own, when the earliest one is
    /// due): asks the checker about each due half message and writes what it answered; those whose checks
    /// ran out are rolled back or moved. Returns how many half messages it resolved.
    @discardableResult
    public func checkHalfMessages() async -> Int {
        guard let checker = halfMessageChecker.withLock({ $0 }) else { return 0 }
        guard checkingHalfMessages.withLock({ running in
            defer { running = true }
            return !running
        }) else { return 0 }
        defer { checkingHalfMessages.withLock { $0 = false } }
        let o = options.halfMessages
        let now = options.clock.wallMilliseconds
        let due: [(UInt64, HalfMessageEntry, String, UInt64?)] = core.withLock { c in
            guard c.failure == nil, !c.closed else { return [] }
            let lastResort = o.unresolvedQueue.flatMap { c.state.queueIDs[$0] }
            return c.state.halfMessages.sorted { $0.key < $1.key }.compactMap { id, h in
                let wait = h.checks == 0 ? o.firstCheckAfter : o.checkInterval
                guard now >= h.lastCheckAt + wait.milliseconds else { return nil }
                return (id, h, c.state.queues[h.queue]?.name ?? "", lastResort)
            }
        }
        defer {
            // The next pass is due when the earliest pending one is; one prepared after this pass is due no
            // earlier than `firstCheckAfter` from now.
            let next = core.withLock { c in
                c.state.halfMessages.values.map { $0.lastCheckAt + ($0.checks == 0 ? o.firstCheckAfter : o.checkInterval).milliseconds }.min()
            }
            nextCheckBack.store(min(next ?? .max, options.clock.wallMilliseconds + o.firstCheckAfter.milliseconds), ordering: .relaxed)
        }
        var resolved = 0
        for (id, half, queue, lastResort) in due {
            let record: StoreRecord
            if Int(half.checks) >= o.maxChecks {
                record = .resolveHalf(message: id, lastResort.map { .moved(queue: $0) } ?? .expired)
            } else if let message = try? await readMessageOffPool(at: half.entry.bodyLSN) {
                let check = HalfMessageCheck(id: HalfMessageID(rawValue: id), queue: queue, message: message, checks: Int(half.checks),
                                             preparedAt: half.preparedAt)
                switch await checker(check) {
                case .commit: record = .resolveHalf(message: id, .commit)
                case .rollback: record = .resolveHalf(message: id, .rollback)
                case .unknown: record = .halfChecked(message: id, time: options.clock.wallMilliseconds)
                }
            } else {
                // Its body cannot be read (damaged: reads refuse it): the check counts as unanswered, so the
                // message still ends after `maxChecks` instead of staying pending for ever.
                record = .halfChecked(message: id, time: options.clock.wallMilliseconds)
            }
            guard let effect = try? await perform([record]) else { break }  // the log failed or closed
            if case .halfResolved(.committed) = effect { resolved += 1 }
            if case .halfResolved(.rolledBack) = effect { resolved += 1 }
        }
        return resolved
    }
}

/// A pending half message, as the checker sees it.
public struct HalfMessageCheck: Sendable {
    /// The half message asked about.
    public var id: HalfMessageID
    /// The name of the queue it was prepared for; empty when that queue was deleted since (a commit then
    /// drops the message).
    public var queue: String
    /// Its headers and body, as prepared.
    public var message: Message
    /// Check-backs of it that went unanswered before this one.
    public var checks: Int
    /// Milliseconds since 1970.
    public var preparedAt: Int64
}

/// The application's answer to a check-back: did the local transaction behind the half message commit?
public enum HalfMessageDecision: Sendable {
    /// The transaction committed: the message enters its queue, as with `commitHalfMessage`.
    case commit
    /// The transaction did not commit: the message is discarded, as with `rollbackHalfMessage`.
    case rollback
    /// Not known yet: ask again after `HalfMessageOptions.checkInterval`.
    case unknown
}

/// Asked about each half message left unresolved (see `HalfMessageOptions`).
public typealias HalfMessageChecker = @Sendable (HalfMessageCheck) async -> HalfMessageDecision

/// A pending half message, as `QueueStore.halfMessages()` and `StoreInspector` list it.
public struct HalfMessageInfo: Sendable, Equatable {
    /// Its id, as `prepare(to:_:)` returned it.
    public var id: HalfMessageID
    /// The name of the queue it was prepared for; empty when that queue was deleted since (a commit then
    /// drops the message).
    public var queue: String
    /// Check-backs of it that went unanswered so far (answered `.unknown`, or its body could not be read).
    public var checks: Int
    /// When it was prepared: milliseconds since 1970, by the store's clock.
    public var preparedAt: Int64
}
