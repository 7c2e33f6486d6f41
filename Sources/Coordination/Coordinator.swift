/// The replication group's coordination: a leader lease and a fenced group state, in a store that provides
/// consensus (etcd), so that the replication protocol needs none of its own.
///
/// Two keys per group: the leader key, bound to the leader's lease, and the state key (a `GroupState`). Every
/// change of the state is a transaction that compares what its writer read: `claimLeadership` only while no leader
/// key exists and the state is as read; `updateState` only while the caller's lease holds the leader key and the
/// state is as read. So two writers can never both win, however late one of them is. The fence is that compare,
/// never elapsed time: etcd resets lease TTLs when it restarts or changes leader, so a lease can outlive its TTL.
///
/// Implementations: `EtcdCoordinator` (etcd's v3 JSON gateway) and `InMemoryCoordinator` (one process, a
/// manual clock, for deterministic simulations).
public protocol Coordinator: Sendable {
    /// Grants a lease of at least `ttl` (the store rounds up to whole seconds and to its minimum, 2 s for etcd).
    /// - Throws: `CoordinationError` (`.unavailable`, `.timedOut`, `.rejected`, ...).
    func grantLease(ttl: Duration) async throws(CoordinationError) -> Lease

    /// Renews a lease to its full TTL; returns the TTL it now has, or nil when the lease is gone (expired or
    /// revoked), which for a leader means it no longer holds the leader key.
    /// - Throws: `CoordinationError` when the store cannot be asked (a nil is an answer, not an error).
    func renew(_ lease: LeaseID) async throws(CoordinationError) -> Duration?

    /// Ends a lease now; the leader key, if bound to it, is deleted with it.
    /// - Throws: `CoordinationError.Code.leaseNotFound` when the lease was already gone.
    func revoke(_ lease: LeaseID) async throws(CoordinationError)

    /// Reads both keys at one revision.
    /// - Throws: `CoordinationError`.
    func read() async throws(CoordinationError) -> GroupSnapshot

    /// Becomes leader if nobody is: in one transaction, succeeds only if no leader key exists and the state key
    /// was last modified at `expecting` (nil: the state key does not exist yet); then creates the leader key,
    /// naming `holder`, bound to `lease`, and writes `state`, whose epoch the caller raised and whose leader is
    /// `holder`.
    /// - Returns: `.won` with the new revision (the state's new `stateRevision`), or `.lost` with the snapshot
    ///   that made the compare fail.
    /// - Throws: `.invalidArgument` when `state` breaks an invariant or does not name `holder` as leader;
    ///   `.leaseNotFound` when the compare succeeded but `lease` is gone; the transport's errors.
    func claimLeadership(state: GroupState, holder: ReplicaIdentity, lease: LeaseID,
                         expecting: Revision?) async throws(CoordinationError) -> ClaimOutcome

    /// Writes a new state (an in-sync set change, say): succeeds only if the leader key is held under `lease`
    /// and the state key was last modified at `expecting`.
    /// - Returns: `.applied` with the new revision, or `.conflict` with the snapshot that made the compare fail.
    /// - Throws: `.invalidArgument` when `state` breaks an invariant; the transport's errors.
    func updateState(_ state: GroupState, lease: LeaseID,
                     expecting: Revision) async throws(CoordinationError) -> UpdateOutcome

    /// Deletes the leader key if it is held under `lease`; true when it was. The state key stays: the next leader
    /// replaces it when it claims.
    /// - Throws: `CoordinationError`.
    func resign(lease: LeaseID) async throws(CoordinationError) -> Bool

    /// Every change of the group's keys after revision `after`, one snapshot per changed revision, in revision
    /// order (a claim changes both keys in one revision, and is one snapshot). The sequence never ends by
    /// itself: it ends with `.unavailable` when the store goes away, `.revisionCompacted` when `after` is too old
    /// (read again, then watch from the read's revision), or when the consuming task is cancelled.
    /// - Throws: `CoordinationError` when the watch cannot be started.
    func watch(after: Revision) async throws(CoordinationError) -> CoordinationWatch
}

/// How `Coordinator.claimLeadership` ended.
public enum ClaimOutcome: Hashable, Sendable {
    /// The caller leads: the leader key and the new state were written at this revision.
    case won(Revision)
    /// Someone else leads, or the state changed since it was read: the snapshot the compare failed on.
    case lost(GroupSnapshot)
}

/// How `Coordinator.updateState` ended.
public enum UpdateOutcome: Hashable, Sendable {
    /// The state was written at this revision.
    case applied(Revision)
    /// The caller's lease no longer holds the leader key, or the state changed since it was read: the snapshot
    /// the compare failed on.
    case conflict(GroupSnapshot)
}
