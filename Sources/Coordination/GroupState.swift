/// What the replication group agrees on, kept in the coordination store and changed only by its fenced
/// transactions (`Coordinator.claimLeadership` and `Coordinator.updateState`).
///
/// Invariants, which `validate()` checks before any write:
/// - only a member of `inSync` may become leader: `leader`, when set, is in `inSync` (no unclean election);
/// - `inSync` names each replica at most once, and is a subset of `members` when `members` is not empty;
/// - the epoch never decreases: every new leader raises it, and a state written under an epoch carries it.
///   The store cannot compare a number inside a value, so this one is the caller's: it writes only states it
///   derived from the state at the revision it expects, and the compare makes sure nobody wrote in between.
public struct GroupState: Hashable, Sendable, Codable {
    /// The leader epoch: raised by every new leader, carried by every log frame; followers refuse frames of an
    /// older epoch, which is what stops a paused old leader.
    public var epoch: UInt64
    /// The replica that leads this epoch; nil before the first election. Whether it is still alive is told by
    /// the leader key (`GroupSnapshot.holder`), not by this field.
    public var leader: ReplicaIdentity?
    /// The in-sync replica set, leader included: the replicas whose durable LSN the commit rule waits for, and
    /// the only ones that may become leader.
    public var inSync: [ReplicaIdentity]
    /// Every replica known to the group, in sync or catching up (empty: not tracked).
    public var members: [ReplicaIdentity]
    /// The identity of the group's log (a UUID's text), written by the group's first leader: a replica's empty
    /// directory takes it, and a directory holding another log refuses to join. Nil in a state that predates it.
    public var log: String?

    /// A group state; see the type's invariants.
    public init(epoch: UInt64, leader: ReplicaIdentity?, inSync: [ReplicaIdentity], members: [ReplicaIdentity] = [],
                log: String? = nil) {
        self.epoch = epoch
        self.leader = leader
        self.inSync = inSync
        self.members = members
        self.log = log
    }

    /// Throws `.invalidArgument` naming the first broken invariant that one state can show by itself (the
    /// epoch's monotonicity needs the previous state: see the type's doc).
    public func validate() throws(CoordinationError) {
        if let leader, !inSync.contains(leader) {
            throw CoordinationError(.invalidArgument, "leader \(leader) is not in the in-sync set")
        }
        if Set(inSync).count != inSync.count {
            throw CoordinationError(.invalidArgument, "the in-sync set names a replica twice")
        }
        if !members.isEmpty, let stranger = inSync.first(where: { !members.contains($0) }) {
            throw CoordinationError(.invalidArgument, "in-sync replica \(stranger) is not a member")
        }
    }
}
