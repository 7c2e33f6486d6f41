import DurableQueue

/// Where a replica's replication endpoint is.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// A host name or an IP address.
    public var host: String
    /// A TCP port (0 for `ReplicationOptions.listen`: any free port).
    public var port: Int

    /// The endpoint at `host`, `port`.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`.
    public var description: String { "\(host):\(port)" }
}

/// How a store takes part in its replication group: who it is, where its peers are, and the commit rule's
/// numbers. Every member of a group opens its store with the same `minInsyncReplicas` and `leaseTTL`.
public struct ReplicationOptions: Sendable {
    /// This member's name in the group (stable across restarts; its data directory's incarnation tells a
    /// member that lost its disk from one that did not).
    public var member: String
    /// Where this member's replication endpoint listens (port 0: any free port; see
    /// `ReplicatedQueueStore.listenPort`).
    public var listen: Endpoint
    /// Every other member's replication endpoint, by name.
    public var peers: [String: Endpoint]
    /// A confirm needs the in-sync set, the leader included, to have at least this many members; below it,
    /// writes are refused with `.notEnoughReplicas` before anything is written (Kafka's
    /// `min.insync.replicas`). With 3 replicas, 2 survives one loss without losing a confirmed message.
    /// From 2 through `replicationFactor`: the leader alone never commits.
    public var minInsyncReplicas = 2
    /// The leader's lease in the coordinator: a leader that dies is replaced about this long after.
    public var leaseTTL: Duration = .seconds(2)
    /// An in-sync follower that has had no connection to the leader for this long, or has made no progress
    /// toward the leader's log end for this long (connected but stalled: a paused process, a disk whose syncs
    /// hang), leaves the in-sync set, so that the others can confirm without it (if at least
    /// `minInsyncReplicas` remain; otherwise writes are refused, `.notEnoughReplicas`, instead of waiting).
    /// A follower that moves, however far behind, stays.
    public var inSyncLagTime: Duration = .seconds(2)
    /// How long a write on the leader's store (made there, through `ReplicatedQueueStore`'s publishes, appends,
    /// offset commits, producers' sends and transactions, or forwarded from a follower) waits for its confirm,
    /// by the store's clock (`StoreOptions.clock`). Past it the caller gets `.indeterminate`: the
    /// leader may hold the write, and commits it if its in-sync replicas come back (its store applies it then,
    /// as if the caller were still waiting), so an idempotent producer's resend settles it exactly once. This
    /// bounds the one wait nothing else ends: a write taken while the in-sync set was large enough, whose
    /// followers then all stopped answering (after `inSyncLagTime` the set is below `minInsyncReplicas` and
    /// nothing commits until one returns). Make it well over `inSyncLagTime`, or writes held back only until a
    /// stalled follower leaves the set end indeterminate. Checked at each of the store's maintenance passes
    /// (`StoreOptions.maintenanceInterval`). (Kafka's `request.timeout.ms`.)
    public var confirmTimeout: Duration = .seconds(10)
    /// How often a node looks at its lease, its connections and the group's state.
    public var tick: Duration = .milliseconds(20)

    /// Options for `member`, listening on `listen`, with its `peers` by name (the other defaults as documented).
    public init(member: String, listen: Endpoint, peers: [String: Endpoint]) {
        self.member = member
        self.listen = listen
        self.peers = peers
    }

    /// The group's size: this member and its peers (Kafka's replication factor).
    public var replicationFactor: Int { peers.count + 1 }

    /// Refuses a group the options cannot make: a member among its own peers, two members at one endpoint,
    /// a `minInsyncReplicas` outside 2 through `replicationFactor`, durations that are not positive. A confirm
    /// of a replicated store is on at least two disks: the leader alone never commits (one copy is what
    /// `QueueStore` gives), so 1 is refused rather than accepted and never met.
    func validate() throws(QueueError) {
        func refuse(_ why: String) -> QueueError { QueueError(.invalidArgument, "replication options: \(why)") }
        guard !member.isEmpty else { throw refuse("the member's name is empty") }
        if peers[member] != nil { throw refuse("the member '\(member)' is named among its own peers") }
        guard !peers.isEmpty else {
            throw refuse("no peers: a replicated store needs at least one other member (QueueStore keeps one copy)")
        }
        if let empty = peers.keys.first(where: \.isEmpty) { throw refuse("a peer's name is empty ('\(empty)')") }
        var byEndpoint: [Endpoint: String] = [:]
        for (name, endpoint) in peers.sorted(by: { $0.key < $1.key }) {
            guard (1...65535).contains(endpoint.port) else { throw refuse("peer '\(name)' has port \(endpoint.port)") }
            if let other = byEndpoint.updateValue(name, forKey: endpoint) {
                throw refuse("peers '\(other)' and '\(name)' are both at \(endpoint)")
            }
        }
        if listen.port != 0, let other = byEndpoint[listen] {
            throw refuse("the member '\(member)' listens at \(listen), where its peer '\(other)' is")
        }
        guard (0...65535).contains(listen.port) else { throw refuse("listen port \(listen.port)") }
        guard (2...replicationFactor).contains(minInsyncReplicas) else {
            throw refuse("minInsyncReplicas is \(minInsyncReplicas); it must be 2 through the group's size, "
                         + "\(replicationFactor)")
        }
        for (name, value) in [("leaseTTL", leaseTTL), ("inSyncLagTime", inSyncLagTime),
                              ("confirmTimeout", confirmTimeout), ("tick", tick)] where value <= .zero {
            throw refuse("\(name) is \(value); it must be positive")
        }
    }
}

/// What a replicated store is in its group right now.
public enum StoreRole: Hashable, Sendable, CustomStringConvertible {
    /// Opening: the replica's identity and lease are being set up.
    case starting
    /// Between roles: looking for a leader, or about to claim leadership.
    case candidate
    /// Leading under `epoch`: it serves writes and consumers (see `ReplicatedQueueStore.leaderStore()`).
    case leader(epoch: UInt64)
    /// Following `leader` under `epoch`: it holds a byte-identical copy of the log up to what is committed.
    case follower(leader: String, epoch: UInt64)
    /// Shut down, or ended by an error it could not recover from.
    case stopped

    /// The role in words (`leader (epoch 3)`, `follower of node-b (epoch 3)`, ...).
    public var description: String {
        switch self {
        case .starting: "starting"
        case .candidate: "candidate"
        case .leader(let epoch): "leader (epoch \(epoch))"
        case .follower(let leader, let epoch): "follower of \(leader) (epoch \(epoch))"
        case .stopped: "stopped"
        }
    }
}
