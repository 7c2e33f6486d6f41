/// Who holds the leader key: the replica that claimed it, the lease it is bound to, and the revision that created
/// it. The key disappears when the lease ends (expired or revoked) or the holder resigns.
public struct LeaderHolder: Hashable, Sendable, Codable {
    /// The replica that claimed leadership.
    public var identity: ReplicaIdentity
    /// The lease the leader key is bound to.
    public var lease: LeaseID
    /// The revision that created the key: unique and increasing over successive holders.
    public var since: Revision

    /// A holder as read from the store.
    public init(identity: ReplicaIdentity, lease: LeaseID, since: Revision) {
        self.identity = identity
        self.lease = lease
        self.since = since
    }
}

/// The group's coordination keys as read at one revision of the store.
public struct GroupSnapshot: Hashable, Sendable, Codable {
    /// The group state; nil when it was never written.
    public var state: GroupState?
    /// The state key's last-modified revision: what a fenced write passes as `expecting`. Nil exactly when
    /// `state` is nil.
    public var stateRevision: Revision?
    /// Who holds the leader key, if anyone.
    public var holder: LeaderHolder?
    /// The store-wide revision this snapshot was read at (for a watch event, the revision of that change).
    public var revision: Revision

    /// A snapshot as read from the store.
    public init(state: GroupState?, stateRevision: Revision?, holder: LeaderHolder?, revision: Revision) {
        self.state = state
        self.stateRevision = stateRevision
        self.holder = holder
        self.revision = revision
    }
}
