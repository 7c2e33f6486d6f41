import Synchronization

/// `Coordinator` in one process, with etcd's semantics, for deterministic simulations of the replication
/// protocol: one store-wide revision counter raised by every write, leases that expire on an injected
/// `ManualClock` (and delete the leader key with a write of their own, as etcd does), the same compares, and
/// watches replayed from a bounded history.
///
/// Several simulated nodes share one instance, as several etcd clients share one cluster. `setAvailable(false)`
/// makes every call throw `.unavailable` and ends every watch with it, as a partition from etcd would.
public final class InMemoryCoordinator: Coordinator {
    /// etcd's minimum lease TTL: a shorter one is granted as 2 s there, so here too.
    public static let minimumLeaseTTL = Duration.seconds(2)

    private struct LeaseRecord {
        var ttl: Duration
        var expiresAt: Duration
    }

    private struct Store {
        var revision: Int64 = 0
        var nextLease: Int64 = 0x1000
        var leases: [LeaseID: LeaseRecord] = [:]
        var holder: LeaderHolder?
        var state: GroupState?
        var stateRevision: Revision?
        /// The snapshot after each change, oldest first, at most `historyLimit`: a watch from before the oldest
        /// is `.revisionCompacted`, as after an etcd compaction.
        var history: [GroupSnapshot] = []
        var watchers: [Int: AsyncThrowingStream<GroupSnapshot, any Error>.Continuation] = [:]
        var nextWatcher = 0
        var available = true

        var snapshot: GroupSnapshot {
            GroupSnapshot(state: state, stateRevision: stateRevision, holder: holder,
                          revision: Revision(rawValue: revision))
        }
    }

    private let clock: ManualClock
    private let historyLimit: Int
    private let store = Mutex(Store())

    /// A coordinator whose leases expire on `clock`. `historyLimit` bounds the changes kept for watches.
    public init(clock: ManualClock, historyLimit: Int = 10_000) {
        precondition(historyLimit > 0, "a watch needs at least the last change")
        self.clock = clock
        self.historyLimit = historyLimit
        clock.onAdvance { [weak self] now in self?.expireLeases(at: now) }
    }

    /// Makes the coordinator reachable or not. Unreachable: every call throws `.unavailable` and every watch
    /// ends with it; leases still expire (the store goes on without the caller, as etcd would).
    public func setAvailable(_ available: Bool) {
        let ended = store.withLock { s -> [AsyncThrowingStream<GroupSnapshot, any Error>.Continuation] in
            s.available = available
            guard !available else { return [] }
            defer { s.watchers.removeAll() }
            return Array(s.watchers.values)
        }
        for continuation in ended {
            continuation.finish(throwing: CoordinationError(.unavailable, "the in-memory coordinator was switched off"))
        }
    }

    /// Makes the coordinator reachable again as a restarted etcd comes back: every lease it holds gets its
    /// whole TTL again from now (etcd's new leader extends every lease it recovers), so a lease outlives the
    /// outage whether or not its holder still wants it.
    public func restart() {
        let now = clock.now
        store.withLock { s in
            s.available = true
            for id in s.leases.keys { s.leases[id]!.expiresAt = now + s.leases[id]!.ttl }
        }
    }

    /// The store-wide revision now (for tests that check a call wrote nothing).
    public var currentRevision: Revision { store.withLock { Revision(rawValue: $0.revision) } }

    public func grantLease(ttl: Duration) async throws(CoordinationError) -> Lease {
        try operate { s in
            let granted = Self.grantedTTL(ttl)
            s.nextLease += 1
            let id = LeaseID(rawValue: s.nextLease)
            s.leases[id] = LeaseRecord(ttl: granted, expiresAt: clock.now + granted)
            return Lease(id: id, ttl: granted)
        }
    }

    public func renew(_ lease: LeaseID) async throws(CoordinationError) -> Duration? {
        try operate { s in
            guard var record = s.leases[lease] else { return nil }
            record.expiresAt = clock.now + record.ttl
            s.leases[lease] = record
            return record.ttl
        }
    }

    public func revoke(_ lease: LeaseID) async throws(CoordinationError) {
        try operate { s throws(CoordinationError) in
            guard s.leases.removeValue(forKey: lease) != nil else {
                throw CoordinationError(.leaseNotFound, "lease \(lease) not found")
            }
            dropLeaderKey(ifBoundTo: lease, in: &s)
        }
    }

    public func read() async throws(CoordinationError) -> GroupSnapshot {
        try operate { s in s.snapshot }
    }

    public func claimLeadership(state: GroupState, holder: ReplicaIdentity, lease: LeaseID,
                                expecting: Revision?) async throws(CoordinationError) -> ClaimOutcome {
        try state.validate()
        guard state.leader == holder else {
            throw CoordinationError(.invalidArgument, "the claimed state must name \(holder) as leader")
        }
        return try operate { s throws(CoordinationError) in
            guard s.holder == nil, s.stateRevision == expecting else { return .lost(s.snapshot) }
            // As in etcd, the lease is checked only on the branch taken: a lost claim with a dead lease is lost.
            guard s.leases[lease] != nil else {
                throw CoordinationError(.leaseNotFound, "lease \(lease) not found")
            }
            s.revision += 1
            let revision = Revision(rawValue: s.revision)
            s.holder = LeaderHolder(identity: holder, lease: lease, since: revision)
            s.state = state
            s.stateRevision = revision
            record(&s)
            return .won(revision)
        }
    }

    public func updateState(_ state: GroupState, lease: LeaseID,
                            expecting: Revision) async throws(CoordinationError) -> UpdateOutcome {
        try state.validate()
        return try operate { s in
            #if COORDINATION_BROKEN_UPDATE_WITHOUT_COMPARE
            // BROKEN ON PURPOSE (harness check builds only): writes whatever state it is given.
            _ = (lease, expecting)
            #else
            guard s.holder?.lease == lease, s.stateRevision == expecting else { return .conflict(s.snapshot) }
            #endif
            s.revision += 1
            s.state = state
            s.stateRevision = Revision(rawValue: s.revision)
            record(&s)
            return .applied(Revision(rawValue: s.revision))
        }
    }

    public func resign(lease: LeaseID) async throws(CoordinationError) -> Bool {
        try operate { s in
            guard s.holder?.lease == lease else { return false }
            dropLeaderKey(ifBoundTo: lease, in: &s)
            return true
        }
    }

    public func watch(after: Revision) async throws(CoordinationError) -> CoordinationWatch {
        let box = WatcherSlot()
        let (watch, continuation) = CoordinationWatch.makeStream { [weak self] in
            guard let self, let id = box.id.withLock({ $0 }) else { return }
            _ = self.store.withLock { $0.watchers.removeValue(forKey: id) }
        }
        try operate { s throws(CoordinationError) in
            // History holds every change since the oldest kept one; `after` older than the change before it
            // may have missed changes that were dropped.
            if let oldest = s.history.first, after.rawValue < oldest.revision.rawValue - 1,
               s.history.count == historyLimit {
                throw CoordinationError(.revisionCompacted, "revision \(after) is older than the kept history")
            }
            for snapshot in s.history where snapshot.revision > after { continuation.deliver(snapshot) }
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = continuation
            box.id.withLock { $0 = id }
        }
        return watch
    }

    // MARK: - Inside the lock

    private final class WatcherSlot: Sendable {
        let id = Mutex<Int?>(nil)
    }

    /// Runs `body` under the lock when the coordinator is reachable (leases due by now expire first).
    private func operate<T: Sendable>(_ body: (inout Store) throws(CoordinationError) -> T) throws(CoordinationError) -> T {
        let now = clock.now
        return try store.withLock { s throws(CoordinationError) -> T in
            guard s.available else {
                throw CoordinationError(.unavailable, "the in-memory coordinator is switched off")
            }
            expire(at: now, in: &s)
            return try body(&s)
        }
    }

    private func expireLeases(at now: Duration) {
        store.withLock { s in expire(at: now, in: &s) }
    }

    /// Ends every lease due by `now`; a leader key bound to one is deleted by a write, as etcd's expiry does.
    private func expire(at now: Duration, in s: inout Store) {
        let due = s.leases.filter { $0.value.expiresAt <= now }.map(\.key)
        for lease in due.sorted(by: { $0.rawValue < $1.rawValue }) {
            s.leases[lease] = nil
            dropLeaderKey(ifBoundTo: lease, in: &s)
        }
    }

    private func dropLeaderKey(ifBoundTo lease: LeaseID, in s: inout Store) {
        guard s.holder?.lease == lease else { return }
        s.revision += 1
        s.holder = nil
        record(&s)
    }

    /// Appends the snapshot of the write just made to the history and hands it to every watch.
    private func record(_ s: inout Store) {
        let snapshot = s.snapshot
        if s.history.count == historyLimit { s.history.removeFirst() }
        s.history.append(snapshot)
        for continuation in s.watchers.values { continuation.deliver(snapshot) }
    }

    private static func grantedTTL(_ ttl: Duration) -> Duration {
        // Whole seconds, rounded up, and at least the minimum: what etcd grants.
        let (seconds, attoseconds) = ttl.components
        let whole = attoseconds > 0 ? seconds + 1 : seconds
        return max(.seconds(whole), minimumLeaseTTL)
    }
}
