import LogFormat

/// The group committer's bookkeeping, with no threads, locks or I/O, so that its rules can be checked over
/// every interleaving: groups written and waiting for a sync, the syncs issued and in flight, the durable
/// watermark and the failure latch.
///
/// Rules:
/// - A sync covers every record written before it was issued (`writtenEnd` at issue).
/// - A sync's success counts only once every sync issued before it has returned successfully too: a
///   write-back error is reported to one `fdatasync` caller only, so a later success that overtook an
///   earlier, failing sync proves nothing about the earlier one's pages.
/// - Groups are released whole and in LSN order, once the durable watermark passes their last record.
/// - After the first failure nothing is confirmed again; every group not yet released fails with it.
/// - Replicated (a leader's log): a group is released only once the in-sync replicas have made it durable
///   too; the confirmed watermark (`committed`) is the lower of the two.
struct CommitLedger<Waiter> {
    struct Group {
        var endLSN: LSN
        var waiters: [Waiter]
    }

    /// A sync issued and not yet returned.
    struct Ticket: Equatable {
        let sequence: UInt64
        let endLSN: LSN
    }

    /// What a returned sync (or a failure) releases: groups now durable, in LSN order, or waiters that
    /// will never be confirmed, with the error to give them.
    struct Release {
        var confirmed: [Group] = []
        var failed: [Waiter] = []
        var error: WALError?
        /// Replicated: waiters whose records were written (and so may have been shipped) when the log failed or
        /// closed. Another replica may hold them and a new leader commit them: their outcome is unknown, never
        /// "failed" (`WALError.Code.indeterminate`).
        var uncertain: [Waiter] = []
        var isEmpty: Bool { confirmed.isEmpty && failed.isEmpty && uncertain.isEmpty }
    }

    /// The highest durable LSN (its `previous` before anything is).
    private(set) var durable: LSN
    /// The end of the records written so far (the next sync issued covers up to here).
    private(set) var writtenEnd: LSN
    /// The first failure; once set, nothing is confirmed again.
    private(set) var failure: WALError?
    /// How many syncs may be in flight at once.
    let syncsInFlightMax: Int
    /// Replicated: the highest LSN every in-sync replica has reported durable. Nil on a single node, where
    /// the local disk alone decides.
    private(set) var replicated: LSN?
    /// The highest LSN that is confirmed: durable here and, replicated, on every in-sync replica.
    var committed: LSN { replicated.map { min($0, durable) } ?? durable }

    private var groups: [Group] = []
    private var firstGroup = 0
    private var tickets: [(ticket: Ticket, returned: Bool)] = []
    private var nextSequence: UInt64 = 0
    /// The end covered by the last sync issued.
    private var issuedEnd: LSN

    /// `replicatedThrough`: for a replicated log, what the in-sync replicas are known to hold durably at the
    /// start (nil: not replicated).
    init(nextLSN: LSN, syncsInFlightMax: Int, replicatedThrough: LSN? = nil) {
        precondition(syncsInFlightMax >= 1)
        replicated = replicatedThrough
        durable = nextLSN.previous
        writtenEnd = nextLSN
        issuedEnd = nextLSN
        self.syncsInFlightMax = syncsInFlightMax
    }

    var syncsInFlight: Int { tickets.count }
    /// Records are written that no sync issued so far covers.
    var hasUnsyncedWrites: Bool { writtenEnd > issuedEnd }
    /// A sync should be issued now: there is something to cover and room for one more in flight.
    var wantsSync: Bool { failure == nil && hasUnsyncedWrites && tickets.count < syncsInFlightMax }
    /// Groups written and not yet released.
    var unreleasedGroups: Int { groups.count - firstGroup }

    /// Notes that the records before `end` are written, and who waits for them (possibly nobody, for the
    /// part of a group written before a segment roll).
    mutating func written(through end: LSN, waiters: [Waiter]) {
        precondition(end >= writtenEnd, "writes are recorded in LSN order")
        writtenEnd = end
        if !waiters.isEmpty { groups.append(Group(endLSN: end, waiters: waiters)) }
    }

    /// Issues a sync covering everything written so far.
    mutating func issueSync() -> Ticket {
        precondition(tickets.count < syncsInFlightMax, "too many syncs in flight")
        let ticket = Ticket(sequence: nextSequence, endLSN: writtenEnd)
        nextSequence += 1
        issuedEnd = writtenEnd
        tickets.append((ticket, false))
        return ticket
    }

    /// Records the outcome of the sync `ticket` and returns what it releases.
    mutating func syncReturned(_ ticket: Ticket, _ outcome: Result<Void, WALError>) -> Release {
        guard let i = tickets.firstIndex(where: { $0.ticket == ticket }) else {
            preconditionFailure("a sync returned twice or was never issued")
        }
        if case .failure(let error) = outcome {
            tickets.remove(at: i)
            return fail(error)
        }
        tickets[i].returned = true
        guard failure == nil else {
            tickets.remove(at: i)
            return Release()
        }
        var newDurable = durable
        #if WAL_BROKEN_CONFIRM_OUT_OF_ORDER
        // BROKEN ON PURPOSE (harness check builds only): believes a later sync although an earlier one is
        // still in flight.
        newDurable = max(newDurable, tickets[i].ticket.endLSN.previous)
        tickets.remove(at: i)
        #else
        while let first = tickets.first, first.returned {
            newDurable = max(newDurable, first.ticket.endLSN.previous)
            tickets.removeFirst()
        }
        #endif
        durable = newDurable
        return releaseCommitted()
    }

    /// The in-sync replicas have made everything through `lsn` durable (a replicated log; the lowest of
    /// their reports). Returns what that releases: groups durable here too.
    mutating func replicasDurable(through lsn: LSN) -> Release {
        guard let replicated else { preconditionFailure("replica reports for a log that is not replicated") }
        #if WAL_BROKEN_CONFIRM_BEFORE_REPLICAS
        // BROKEN ON PURPOSE (harness check builds only): replica reports are noted but do not gate confirms.
        self.replicated = LSN(UInt64.max)
        #else
        self.replicated = max(replicated, lsn)
        #endif
        guard failure == nil else { return Release() }
        return releaseCommitted()
    }

    /// Releases what is confirmed already: a group that added no records (a follower's run holding only a
    /// leader's seal) when no sync is coming to release it.
    mutating func releaseConfirmed() -> Release {
        guard failure == nil else { return Release() }
        return releaseCommitted()
    }

    /// Releases, in LSN order, the groups at or below the confirmed watermark.
    private mutating func releaseCommitted() -> Release {
        let through = committed
        var release = Release()
        while firstGroup < groups.count, groups[firstGroup].endLSN.previous <= through {
            release.confirmed.append(groups[firstGroup])
            firstGroup += 1
        }
        compact()
        return release
    }

    /// Latches `error` (the first one wins) and returns every waiter that will now never be confirmed.
    mutating func fail(_ error: WALError) -> Release {
        if failure == nil {
            failure = WALError(.logFailed, "the log failed and confirms nothing more; close and reopen it to "
                               + "run recovery (cause: \(error))", path: error.path, errno: error.errno)
        }
        var release = Release(error: error)
        for group in groups[firstGroup...] {
            #if WAL_BROKEN_UNCERTAIN_REPORTED_FAILED
            release.failed.append(contentsOf: group.waiters)  // BROKEN ON PURPOSE (harness check builds only)
            #else
            if replicated == nil { release.failed.append(contentsOf: group.waiters) } else { release.uncertain.append(contentsOf: group.waiters) }
            #endif
        }
        groups.removeAll()
        firstGroup = 0
        return release
    }

    /// Drops released groups from the front once they are the larger part of the array.
    private mutating func compact() {
        if firstGroup == groups.count {
            groups.removeAll(keepingCapacity: true)
            firstGroup = 0
        } else if firstGroup > 64 && firstGroup * 2 > groups.count {
            groups.removeFirst(firstGroup)
            firstGroup = 0
        }
    }
}
