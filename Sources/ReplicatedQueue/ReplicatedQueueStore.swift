import Coordination
import DurableLog
import DurableQueue
import LogFormat
import Logging
import NIOPosix
import Replication
import Synchronization

/// A `QueueStore` replicated over a group of nodes: one leads and serves; the others hold byte-identical copies
/// of its log, and a confirm (a publish's, an ack's, an offset commit's, a transaction's) means the record is
/// on the disk of every in-sync replica, never on the leader's alone. Leadership and the in-sync set live in a
/// `Coordinator` (etcd), changed only by fenced transactions; when the leader is lost, an in-sync replica
/// takes over with every confirmed record.
///
/// Each node of the application starts one, with its own directory and the same group: the log and the
/// replica's files are in `<directory>/wal`, the store's checkpoint beside it.
///
/// Outcomes are never vaguer or falser than the truth: `.notLeader` (with `leaderHint`) on a node that does
/// not lead, `.notEnoughReplicas` when the in-sync set is below `minInsyncReplicas` (nothing written), and
/// `.indeterminate` when the leader stopped leading between writing records and their confirm, or the group
/// could not commit them within `ReplicationOptions.confirmTimeout` (a leader may still commit them: an
/// idempotent producer's retry settles it exactly once).
public final class ReplicatedQueueStore: Sendable {
    /// The store's directory, as given to `start`.
    public let directory: String
    private let node: ReplicaNode
    private let leadership: StoreLeadership
    private let roles: RoleBroadcast
    private let running: Task<(any Error)?, Never>
    private let applying: Task<Void, Never>

    private init(directory: String, node: ReplicaNode, leadership: StoreLeadership, roles: RoleBroadcast,
                 running: Task<(any Error)?, Never>, applying: Task<Void, Never>) {
        self.directory = directory
        self.node = node
        self.leadership = leadership
        self.roles = roles
        self.running = running
        self.applying = applying
    }

    /// Starts this node's replica of the group in `directory` (created if needed) and returns once it has
    /// joined: its endpoint listens and it holds a lease. It then leads or follows as the group decides; see
    /// `role`. File work runs on threads of its own, never on the cooperative pool.
    ///
    /// - Throws: `QueueError` `.invalidArgument` for options that cannot make a group (see
    ///   `ReplicationOptions.validate`); `.ioFailure` (the directory, the endpoint's address) or `.invalidStore`,
    ///   with the cause in the message, when the replica cannot start.
    public static func start(directory: String, options: StoreOptions = StoreOptions(),
                             replication: ReplicationOptions,
                             coordinator: any Coordinator) async throws(QueueError) -> ReplicatedQueueStore {
        try replication.validate()
        var logger = options.logger ?? Logger(label: "DurableQueue.replication")
        logger[metadataKey: "member"] = "\(replication.member)"
        let leadership = StoreLeadership(directory: directory, options: options, confirmTimeout: replication.confirmTimeout,
                                         logger: logger)
        let roles = RoleBroadcast()
        let peers = replication.peers
        var configuration = ReplicaNode.Configuration(
            member: replication.member, directory: "\(directory)/wal", options: QueueStore.logOptions(options),
            listen: .init(host: replication.listen.host, port: replication.listen.port),
            resolve: { member in peers[member].map { .init(host: $0.host, port: $0.port) } })
        configuration.leaseTTL = replication.leaseTTL
        configuration.minInsyncReplicas = replication.minInsyncReplicas
        configuration.inSyncLagTime = replication.inSyncLagTime
        configuration.tick = replication.tick
        configuration.leaderService = leadership
        configuration.logger = logger
        configuration.snapshots = StoreSnapshots(directory: directory, applier: leadership.applier)
        configuration.roleObserver = { [roles, logger] role in
            logger.info("role: \(StoreRole(role))")
            roles.publish(StoreRole(role))
        }
        do {
            try await onOwnThread { () throws(WALError) in try PosixFileSystem().createDirectoryDurably(directory) }
        } catch {
            throw QueueError(.ioFailure, "creating the store's directory \(directory) failed: \(error.message)", log: error)
        }
        let node = ReplicaNode(configuration: configuration, coordinator: coordinator,
                               group: MultiThreadedEventLoopGroup.singleton)
        let joined = roles.updates()
        let running = Task { await node.run() }
        for await role in joined where role != .starting {
            if role == .stopped { break }
            let applying = Task { [tick = replication.tick] in await leadership.applier.run(node: node, tick: tick) }
            return ReplicatedQueueStore(directory: directory, node: node, leadership: leadership, roles: roles,
                                        running: running, applying: applying)
        }
        let failure = await running.value
        throw QueueError(.invalidStore, "the replica could not start: \(failure.map { "\($0)" } ?? "stopped")")
    }

    /// What this node is in its group now.
    public var role: StoreRole { StoreRole(node.role) }

    /// The role now, then every change of it, until the node stops.
    public func roleUpdates() -> AsyncStream<StoreRole> { roles.updates() }

    /// While this node follows: the LSN its copy of the store state is applied through (what its leader
    /// committed, as far as it has heard, and it holds durably). The copy is where this node's store starts if
    /// it comes to lead, so the gap to the leader is what a failover to it replays. `.none` otherwise.
    public var followerAppliedLSN: LSN { leadership.applier.follower.appliedLSN }

    /// While this node leads: the group's in-sync set, itself included, as it last recorded the set with the
    /// coordinator. The next leader is elected from this set, so a replica missing from it (caught up or not)
    /// cannot take over if this node fails. A member whose disk was replaced is a new replica (another
    /// incarnation): the set may still name its old one, which no longer exists. Nil while the node does not lead.
    public var inSyncReplicas: [ReplicaIdentity]? { node.inSyncReplicas }

    /// This node's replica: its member name and its data directory's incarnation (nil until it has joined).
    public var replica: ReplicaIdentity? { node.identity }

    /// The port this node's replication endpoint listens on.
    public var listenPort: Int { node.listenPort }

    /// The store, while this node leads: every write through it is confirmed once every in-sync replica holds
    /// it. A new leader first replays the log and commits a session start (which returns every delivery of the
    /// previous leader to its queue); this waits for that, unless the in-sync set is too small to commit.
    /// When the node stops leading, the store ends its consumers and fails later calls with `.notLeader`.
    /// A write the gate lets through waits for its confirm at most `ReplicationOptions.confirmTimeout`, then
    /// ends `.indeterminate` (the leader may still commit it).
    ///
    /// - Throws: `.notLeader` (`leaderHint` names the leader, when known) on a node that does not lead;
    ///   `.notEnoughReplicas` while the in-sync set is below `minInsyncReplicas`.
    public func leaderStore() async throws(QueueError) -> QueueStore {
        let node = self.node
        return try await leadership.store(notLeading: {
            let role = node.role
            var hint: String?
            if case .follower(let leader, _) = role { hint = leader }
            return QueueError(.notLeader, "this node does not lead its group (\(StoreRole(role)))", leaderHint: hint)
        })
    }

    // MARK: - Writes, on any member

    /// Publishes `message` to `queue` through the group: on the leader, as `QueueStore.publish`; on a
    /// follower, forwarded to the leader over the replication connection. Returns once every in-sync replica
    /// holds it.
    ///
    /// - Throws: what `QueueStore.publish` throws on the leader; `.notLeader` when no leader is known (nothing
    ///   written); `.indeterminate` when the connection to the leader ended before its answer, or no answer
    ///   came within `ReplicationOptions.confirmTimeout` (an idempotent producer's retry settles it).
    public func publish(to queue: String, _ message: Message, persistent: Bool = true) async throws(QueueError) -> MessageID {
        guard case .done(let id) = try await carryOut(.publish(queue: queue, message: message, persistent: persistent))
        else { throw Self.unexpected }
        return MessageID(rawValue: id)
    }

    /// Appends `message` to `stream` through the group (forwarded from a follower); returns its offset once
    /// every in-sync replica holds it. Throws as `publish(to:_:persistent:)`.
    public func append(to stream: String, _ message: Message) async throws(QueueError) -> StreamOffset {
        guard case .done(let offset) = try await carryOut(.append(stream: stream, message: message)) else { throw Self.unexpected }
        return StreamOffset(rawValue: offset)
    }

    /// Commits a consumer group's offset on `stream` through the group (forwarded from a follower); returns
    /// once every in-sync replica holds it. Throws as `publish(to:_:persistent:)`.
    public func commitOffset(stream: String, group: String, offset: StreamOffset) async throws(QueueError) {
        _ = try await carryOut(.commitOffset(stream: stream, group: group, offset: offset.rawValue))
    }

    /// Registers an idempotent producer under `name` through the group (as `QueueStore.registerProducer`: the
    /// same id and the next epoch for a name registered before). The producer outlives leaders: its publishes
    /// go to whichever member leads, and a resend after `.indeterminate` is stored at most once.
    public func registerProducer(name: String) async throws(QueueError) -> ReplicatedProducer {
        guard case .registered(let id, let epoch) = try await carryOut(.registerProducer(name: name)) else { throw Self.unexpected }
        return ReplicatedProducer(name: name, id: ProducerID(rawValue: id), epoch: epoch, node: self)
    }

    /// The producer registered earlier as `id` with `epoch` (`ReplicatedProducer.id` and `.epoch`, perhaps
    /// through another member or by another process): what a broker's front end uses when its clients carry
    /// their producer's identity in each request, as Kafka's carry producer id and epoch. Nothing is checked
    /// here; each send is checked on the leader (`.unknownProducer`, `.fenced`).
    public func producer(id: ProducerID, epoch: UInt32, name: String) -> ReplicatedProducer {
        ReplicatedProducer(name: name, id: id, epoch: epoch, node: self)
    }

    /// Starts a transaction of publishes, stream appends and offset commits, committed through the group as
    /// one (see `ReplicatedTransaction`).
    public func transaction() -> ReplicatedTransaction { ReplicatedTransaction(node: self) }

    /// Runs a request on the leader's store here, or sends it to the leader when this node follows one; the
    /// leader's error is thrown as it was there.
    func carryOut(_ request: StoreRequest) async throws(QueueError) -> StoreReply {
        guard case .follower = node.role else { return try await request.execute(on: try await leaderStore()) }
        let body: [UInt8]
        do { body = try await node.request(request.encoded) } catch { throw QueueError.from(error) }
        let reply: StoreReply
        do { reply = try StoreReply(decoding: body) } catch {
            throw QueueError(.indeterminate, "the leader's reply could not be read (\(error)); the write may have been carried out")
        }
        if let error = reply.error { throw error }
        return reply
    }

    /// A reply that does not answer its request: a leader of another version, or a bug.
    static let unexpected = QueueError(.indeterminate, "the leader's reply does not answer the request; it may have been carried out")

    /// Leaves the group: a leader's store is relinquished (what it had not confirmed is indeterminate) and its
    /// lease given up, so that another member takes over at once; a follower disconnects. Then the log closes.
    public func shutdown() async {
        applying.cancel()
        await applying.value
        node.stop()
        _ = await running.value
        roles.finish()
    }
}

extension StoreRole {
    init(_ role: ReplicaNode.Role) {
        switch role {
        case .starting: self = .starting
        case .candidate: self = .candidate
        case .leader(let epoch): self = .leader(epoch: epoch)
        case .follower(let leader, let epoch): self = .follower(leader: leader, epoch: epoch)
        case .stopped: self = .stopped
        }
    }
}
