import Coordination
import DurableLog
import Foundation
import LogFormat
import Logging
import NIOCore
import Synchronization

/// One replica of a replicated log: it takes part in elections through the coordinator; while it leads, it
/// serves its followers' connections, commits what its in-sync set acknowledged and keeps that set in the
/// coordinator (fenced transactions); while it follows, it follows the leader. Its replication endpoint is
/// open from the start: a connection that reaches it while it does not lead is refused (`notLeader`).
///
/// Blocking file work (opening, closing and cutting the log) runs on threads of its own, never on the
/// cooperative pool.
package final class ReplicaNode: Sendable {
    package struct Address: Hashable, Sendable {
        package var host: String
        package var port: Int
        package init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    package struct Configuration: Sendable {
        package var member: String
        package var directory: String
        /// The log's options (the node sets the epoch, the replica flags and the identity for each role).
        package var options: LogOptions
        /// Where this node's replication endpoint listens (port 0: any free port; see `listenPort`).
        package var listen: Address
        /// Where a member's replication endpoint is (nil: unknown for now).
        package var resolve: @Sendable (String) -> Address?
        package var leaseTTL: Duration = .seconds(2)
        package var minInsyncReplicas = 2
        /// How often the node looks at its lease, its connections and the group's state.
        package var tick: Duration = .milliseconds(20)
        /// An in-sync follower with no live connection for this long, or that has made no progress toward the
        /// leader's log end for this long (connected but stalled: a paused process, a hung disk), is removed
        /// from the in-sync set, so that the others can commit without it.
        package var inSyncLagTime: Duration = .seconds(2)
        /// What serves the group while this node leads (a replicated store): started when a term begins, stopped
        /// before the node closes the term's log.
        package var leaderService: (any LeaderService)?
        /// Told every change of `role` (on the node's task; keep it short).
        package var roleObserver: (@Sendable (Role) -> Void)?
        /// The layer's snapshots: sent, while this node leads, to a follower whose log ends before the leader's
        /// first segment, and installed while it follows (nil: such a follower cannot catch up).
        package var snapshots: (any StateSnapshots)?
        /// Where the node says what changes in the group it sees: in-sync set changes, and why it waits.
        package var logger = Logger(label: "DurableQueue.replication")

        package init(member: String, directory: String, options: LogOptions, listen: Address,
                     resolve: @escaping @Sendable (String) -> Address?) {
            self.member = member
            self.directory = directory
            self.options = options
            self.listen = listen
            self.resolve = resolve
        }
    }

    package enum Role: Equatable, Sendable {
        case starting
        case candidate
        case leader(epoch: UInt64)
        case follower(of: String, epoch: UInt64)
        case stopped
    }

    /// A follower's connection to this node while it leads.
    private final class Peer: Sendable {
        let session: LeaderSession
        let connection: ReplicationConnection
        let closed = Mutex(false)

        init(session: LeaderSession, connection: ReplicationConnection) {
            self.session = session
            self.connection = connection
        }
    }

    private struct State {
        var role = Role.starting
        var identity: ReplicaIdentity?
        var leaderLog: WriteAheadLog?
        var leading: Leading?
        var followerLog: WriteAheadLog?
        var followerSession: FollowerSession?
        var stopping = false
        var leaseLost = false
        /// When the lease was last granted or renewed: a leader that cannot renew for two thirds of the TTL steps
        /// down before the lease could end (the fence is the coordinator's compare; this only keeps a cut-off
        /// leader from holding confirms it can no longer give).
        var lastRenewed = ContinuousClock.now
        var listenPort = 0
        /// While leading: the group's in-sync set as this node last wrote it to the coordinator.
        var inSync: [ReplicaIdentity]?
        /// The state revision at which this node last said it may not lead (said once per revision).
        var waitSaidAt: Revision?
    }

    /// What the node holds while it leads (the accept handler reads it).
    private final class Leading: Sendable {
        let log: WriteAheadLog
        let history: EpochHistory
        let epoch: UInt64
        let tracker: InSyncTracker
        let peers = Mutex<[Peer]>([])
        /// Set by the leader's service when it cannot serve this term (its store failed to open): the node steps
        /// down and resigns, so that another member leads.
        let abandoned = Mutex(false)

        init(log: WriteAheadLog, history: EpochHistory, epoch: UInt64, tracker: InSyncTracker) {
            self.log = log
            self.history = history
            self.epoch = epoch
            self.tracker = tracker
        }

        func pumpAll() { for peer in peers.withLock({ $0 }) { peer.session.pump() } }

        /// Why a write must be refused now, before anything is written; nil when it may be appended.
        var writeRefusal: WALError? {
            guard !tracker.canCommit else { return nil }
            return WALError(.notEnoughReplicas, "the in-sync set is \(tracker.inSync.count + 1) replica(s) with the "
                            + "leader, fewer than minInsyncReplicas \(tracker.minInsyncReplicas): nothing written")
        }
    }

    private let configuration: Configuration
    private let coordinator: any Coordinator
    private let group: any EventLoopGroup
    private let state = Mutex(State())
    private let telemetry: ReplicationTelemetry

    package init(configuration: Configuration, coordinator: any Coordinator, group: any EventLoopGroup) {
        self.configuration = configuration
        self.coordinator = coordinator
        self.group = group
        telemetry = ReplicationTelemetry(member: configuration.member, factory: configuration.options.metricsFactory)
    }

    package var role: Role { state.withLock { $0.role } }

    /// Appends one record through this node, returned once every in-sync replica has made it durable (the
    /// commit rule), never on the leader's own sync alone. On a follower, the write is forwarded to the leader
    /// over the replication connection and answered from there. Suspends; blocks no thread.
    ///
    /// - Throws: `WALError` `.notLeader` (this node neither leads nor follows a leader now; `leaderHint` names
    ///   the member it last followed, when any) and `.notEnoughReplicas` (the in-sync set, with the leader, is
    ///   below `minInsyncReplicas`), both before anything is written; `.indeterminate` when the leader stopped
    ///   leading, or a forwarding follower lost its connection, after the record was sent but before it was
    ///   confirmed (a new leader may still commit it: an idempotent producer's retry settles it); the log's
    ///   own errors otherwise.
    package func append<Bytes: ContiguousBytes & Sendable>(_ record: Bytes) async throws(WALError) -> LSN {
        let (leading, following, role) = state.withLock { ($0.leading, $0.followerSession, $0.role) }
        guard let leading else {
            var hint: String?
            if case .follower(let leader, _) = role { hint = leader }
            if let following {
                do {
                    return try await following.forward(record.withUnsafeBytes { Array($0) })
                } catch {
                    var error = error
                    if error.code == .notLeader { error.leaderHint = hint }
                    throw error
                }
            }
            throw WALError(.notLeader, "this replica does not lead its group (\(role))", leaderHint: hint)
        }
        if let refusal = leading.writeRefusal { throw refusal }
        return try await leading.log.append(record)
    }
    /// Sends a request of the layer above (a store operation made on this follower) to the leader's
    /// `LeaderService` and returns its reply. Suspends; blocks no thread.
    ///
    /// - Throws: `WALError` `.notLeader` when this node follows no leader now (`leaderHint` names the member it
    ///   last followed, when any; nothing sent), `.indeterminate` when the connection ended before the reply
    ///   (the leader may have carried it out).
    package func request(_ body: [UInt8]) async throws(WALError) -> [UInt8] {
        let (following, role) = state.withLock { ($0.followerSession, $0.role) }
        var hint: String?
        if case .follower(let leader, _) = role { hint = leader }
        guard let following else {
            throw WALError(.notLeader, "this replica follows no leader now (\(role))", leaderHint: hint)
        }
        do {
            return try await following.request(body)
        } catch {
            var error = error
            if error.code == .notLeader { error.leaderHint = hint }
            throw error
        }
    }

    /// While this node follows: its log now (it changes after a cut) and the LSN its leader committed through,
    /// as far as it knows.
    package var following: (log: WriteAheadLog, committed: LSN)? {
        state.withLock { $0.followerSession }.map { ($0.log, $0.committed) }
    }

    /// The log to append to while this node leads (nil otherwise).
    package var leaderLog: WriteAheadLog? { state.withLock { $0.leaderLog } }
    /// While this node leads: why a write made now would be refused before it is appended (nil: it would be
    /// taken). The coordinator's in-sync set shrinks a moment before this node's own view of it.
    package var leaderWriteRefusal: WALError? { state.withLock { $0.leading }?.writeRefusal }
    /// The follower's log while this node follows (it changes after a cut).
    package var followerLog: WriteAheadLog? { state.withLock { $0.followerLog } }
    package var identity: ReplicaIdentity? { state.withLock { $0.identity } }
    /// The port the replication endpoint listens on (once `run` has started it).
    package var listenPort: Int { state.withLock { $0.listenPort } }

    /// While this node leads: the group's in-sync set (itself included) as it last wrote the set to the
    /// coordinator, the set from which the next leader is elected. Nil while it does not lead.
    package var inSyncReplicas: [ReplicaIdentity]? { state.withLock { $0.inSync } }

    /// Asks `run` to end: a leader steps down (its unconfirmed appends fail with `.closed`), a follower
    /// disconnects, and the logs are closed.
    package func stop() { state.withLock { $0.stopping = true } }

    private var stopping: Bool { state.withLock { $0.stopping } }

    /// Sets the role, and tells the observer when it changed.
    private func setRole(_ role: Role) {
        let changed = state.withLock { s in
            defer { s.role = role }
            return s.role != role
        }
        if changed { configuration.roleObserver?(role) }
    }

    /// Runs the node until `stop()`; returns the error that ended it otherwise.
    package func run() async -> (any Error)? {
        let directory = configuration.directory
        let listener: ReplicationListener
        let lease: LeaseHolder
        do {
            let incarnation = try await onOwnThread { () throws(WALError) in
                // An install a crash interrupted is undone first: its new incarnation is taken here.
                try SnapshotInstall.finishInterrupted(directory: directory)
                return try Incarnation.loadOrCreate(directory: directory)
            }
            let identity = ReplicaIdentity(member: configuration.member, incarnation: incarnation)
            state.withLock { $0.identity = identity }
            try await refuseAnotherLog(in: directory)
            listener = try await ReplicationListener.bind(host: configuration.listen.host, port: configuration.listen.port,
                                                          group: group) { [self] connection in accept(connection) }
            state.withLock { $0.listenPort = listener.port }
            lease = LeaseHolder(try await coordinator.grantLease(ttl: configuration.leaseTTL).id)
            state.withLock { $0.lastRenewed = .now }
        } catch {
            setRole(.stopped)
            return error
        }
        let renewal = Task { [self] in await renew(lease) }
        var failure: (any Error)?
        while !stopping {
            do {
                if state.withLock({ $0.leaseLost }) {
                    let given = lease.id
                    lease.id = try await coordinator.grantLease(ttl: configuration.leaseTTL).id
                    state.withLock { s in
                        s.leaseLost = false
                        s.lastRenewed = .now
                    }
                    // A lease given up while it may live on (see `lead`) takes a leader key of ours with it now,
                    // instead of holding the group at `.wait` until it lapses; one that lapsed is not found.
                    try? await coordinator.revoke(given)
                }
                setRole(.candidate)
                try await step(lease: lease.id)
            } catch {
                failure = error
                if case let error as WALError = error, error.code == .invalidLog || error.code == .corruption { break }
                try? await Task.sleep(for: configuration.tick)
            }
        }
        renewal.cancel()
        try? await listener.close()
        setRole(.stopped)
        return stopping ? nil : failure
    }

    /// Throws `.invalidLog` when `directory` holds a log other than the group's (a directory copied from another
    /// group, or a configuration that points at the wrong one): the node would refuse it at its first lead or
    /// follow anyway, after `start` returned; refused here, the caller is told why.
    private func refuseAnotherLog(in directory: String) async throws {
        guard let text = try await coordinator.read().state?.log, let groups = LogIdentity(text) else { return }
        let local = await onOwnThread { WriteAheadLog.identity(inDirectory: directory) }
        #if !REPLICATION_BROKEN_JOINS_WITH_ANOTHER_LOG  // (harness check builds only: found later, in the background)
        if let local, local != groups {
            throw WALError(.invalidLog, "the log in this directory is \(local), the group's is \(groups): a replica "
                           + "never takes another log's records (a directory of another group?)", path: directory)
        }
        #endif
    }

    /// One turn: read the group, then claim, lead, follow or wait, until that role ends.
    private func step(lease: LeaseID) async throws {
        guard let me = identity else { return }
        let snapshot = try await coordinator.read()
        let proposed = snapshot.state?.log.flatMap(LogIdentity.init) ?? LogIdentity.random()
        switch ElectionRule.step(snapshot, me: me, log: proposed) {
        case .claim(let claimed, let expecting):
            if case .won(let revision) = try await coordinator.claimLeadership(state: claimed, holder: me, lease: lease,
                                                                               expecting: expecting) {
                try await lead(claimed, revision: revision, lease: lease)
            }
        case .follow(let leader, let epoch):
            guard let logText = snapshot.state?.log, let log = LogIdentity(logText) else {
                throw WALError(.invalidLog, "the group's state names no log identity")
            }
            try await follow(leader, epoch: epoch, log: log)
        case .wait:
            if snapshot.holder == nil, let state = snapshot.state, !state.inSync.contains(me) {
                let first = self.state.withLock { s -> Bool in
                    defer { s.waitSaidAt = snapshot.stateRevision }
                    return s.waitSaidAt != snapshot.stateRevision
                }
                if first {
                    configuration.logger.info("""
                        no leader, and this replica (\(me)) may not lead: it is not in the group's in-sync set \
                        \(state.inSync) of epoch \(state.epoch); waiting for a member of that set to claim
                        """)
                }
            }
            try await Task.sleep(for: configuration.tick)
        }
    }

    // MARK: - Leading

    private func lead(_ claimed: GroupState, revision: Revision, lease: LeaseID) async throws {
        guard let me = identity, let logText = claimed.log, let logIdentity = LogIdentity(logText) else { return }
        var options = configuration.options
        options.leaderEpoch = claimed.epoch
        options.confirmsWaitForReplicas = true
        options.identity = logIdentity
        options.isReplica = false
        let directory = configuration.directory
        let epoch = claimed.epoch
        let logOptions = options
        let opened = try await onOwnThread { () throws(WALError) -> (WriteAheadLog, EpochHistory) in
            let log = try WriteAheadLog.open(directory: directory, options: logOptions)
            do throws(WALError) {
                var history = try EpochHistory.load(directory: directory)
                history.truncate(from: log.durableLSN.next)
                try history.begin(epoch: epoch, at: log.durableLSN.next)
                try history.save(directory: directory)
                return (log, history)
            } catch {
                try? log.close()
                throw error
            }
        }
        let tracker = InSyncTracker(log: opened.0, inSync: Set(claimed.inSync).subtracting([me]),
                                    minInsyncReplicas: configuration.minInsyncReplicas,
                                    joinFloor: opened.0.durableLSN.next)
        let leading = Leading(log: opened.0, history: opened.1, epoch: epoch, tracker: tracker)
        opened.0.observeWrites { [leading] in leading.pumpAll() }
        state.withLock { s in
            s.leading = leading
            s.leaderLog = opened.0
            s.inSync = claimed.inSync
        }
        telemetry.startedLeading(inSync: claimed.inSync.count)
        setRole(.leader(epoch: epoch))
        configuration.leaderService?.startLeading(log: opened.0, epoch: epoch, writeRefusal: { [leading] in leading.writeRefusal },
                                                  stepDown: { [leading] in leading.abandoned.withLock { $0 = true } })
        var current = claimed, currentRevision = revision
        var absentSince: [ReplicaIdentity: ContinuousClock.Instant] = [:]
        var failure: (any Error)?
        while !stopping && leaseHolds() && !leading.abandoned.withLock({ $0 }) {
            do {
                guard let next = try await keepInSyncSet(leading, state: current, revision: currentRevision, lease: lease,
                                                         absentSince: &absentSince) else {
                    break  // the state changed under us: another writer won; this node no longer leads
                }
                (current, currentRevision) = next
            } catch {
                #if REPLICATION_BROKEN_LEADS_ON_AFTER_A_FAILED_UPDATE
                // BROKEN ON PURPOSE (harness check builds only): the error leaves without stepping down.
                throw error
                #else
                // A change of the in-sync set whose outcome is unknown (the coordinator did not answer): this
                // node no longer knows the state it leads, so it steps down, by the same path as below. Leaving
                // by the throw would leave its service serving and its log confirming, with nothing checking the
                // lease any more.
                failure = error
                break
                #endif
            }
            try? await Task.sleep(for: configuration.tick)
        }
        // The service first, while followers may still acknowledge: what they do commits; the rest of what it
        // appended becomes indeterminate when it closes the log.
        await configuration.leaderService?.stopLeading()
        state.withLock { s in
            s.leading = nil
            s.leaderLog = nil
            s.inSync = nil
        }
        telemetry.stoppedLeading()
        setRole(.candidate)
        opened.0.observeWrites(nil)
        for peer in leading.peers.withLock({ $0 }) { peer.connection.close() }
        #if REPLICATION_BROKEN_KEEPS_UNRESIGNED_LEASE
        // BROKEN ON PURPOSE (harness check builds only): a resign that failed is ignored and the lease renewed.
        _ = try? await coordinator.resign(lease: lease)
        #else
        do {
            _ = try await coordinator.resign(lease: lease)
        } catch {
            // The leader key may still be bound to this lease, and the lease may outlive the outage (etcd
            // restored from its data gives every lease its whole TTL again). Renewing it would keep the key,
            // and the group waiting on a leader that does not lead, for as long as this node lives: give the
            // lease up instead; the next turn takes a new one and revokes this.
            state.withLock { $0.leaseLost = true }
        }
        #endif
        try? await onOwnThread { () throws(WALError) in try opened.0.close() }
        if leading.abandoned.withLock({ $0 }) {
            // It would most likely fail again: leave the next claim to the others for a lease's time (it claims
            // again after that if none of them could).
            try? await Task.sleep(for: configuration.leaseTTL)
        }
        if let failure { throw failure }
    }

    /// Removes in-sync followers that have had no live connection, or made no progress toward this log's end,
    /// for `inSyncLagTime` (`InSyncTracker.stalled`), adds followers that hold
    /// everything committed, each by a fenced state change. Returns the state as it now is, or nil when a change
    /// was refused (another writer changed the state: this node no longer leads).
    private func keepInSyncSet(_ leading: Leading, state current: GroupState, revision: Revision, lease: LeaseID,
                               absentSince: inout [ReplicaIdentity: ContinuousClock.Instant]) async throws -> (GroupState, Revision)? {
        guard let me = identity else { return nil }
        var current = current, revision = revision
        let peers = leading.peers.withLock { peers in
            peers.removeAll { $0.closed.withLock { $0 } || $0.session.refusal != nil }
            return peers
        }
        let connected = Set(peers.compactMap { $0.session.follower })
        let now = ContinuousClock.now
        var changes: [(ReplicaIdentity, joins: Bool, why: String)] = []
        leading.tracker.noteLeaderEnd(leading.log.acceptedEnd, at: now)
        let stalled = leading.tracker.stalled(for: configuration.inSyncLagTime, at: now)
        for member in current.inSync where member != me {
            if stalled.contains(member) {
                // Connected or not: it holds every confirm back.
                changes.append((member, false, "it made no progress toward the leader's log end for the lag time"))
            } else if connected.contains(member) {
                absentSince[member] = nil
            } else if let since = absentSince[member] {
                if now - since >= configuration.inSyncLagTime {
                    changes.append((member, false, "it has had no connection to the leader for the lag time"))
                }
            } else {
                absentSince[member] = now
            }
        }
        for follower in connected where !current.inSync.contains(follower) && leading.tracker.mayJoin(follower) {
            changes.append((follower, true, "it holds every record committed"))
        }
        for (replica, joins, why) in changes {
            var next = current
            if joins {
                // The tracker first: from here on the commit point waits for it, so the coordinator's set never
                // holds a member that lacks something committed.
                guard leading.tracker.join(replica) else { continue }
                next.inSync.append(replica)
                if !next.members.contains(replica) { next.members.append(replica) }
            } else {
                next.inSync.removeAll { $0 == replica }
            }
            // An error leaves a joining member in the tracker: the update may have been applied, and the error
            // ends this node's leadership (and the tracker with it) anyway.
            switch try await coordinator.updateState(next, lease: lease, expecting: revision) {
            case .applied(let newRevision):
                if !joins { leading.tracker.remove(replica) }
                absentSince[replica] = nil
                current = next
                revision = newRevision
                #if !REPLICATION_BROKEN_STALE_IN_SYNC_REPORT
                // (BROKEN ON PURPOSE when set, harness check builds only: the set the term began with is
                // what the store and the metrics keep telling.)
                state.withLock { $0.inSync = next.inSync }
                telemetry.inSyncChanged(joined: joins, count: next.inSync.count)
                #endif
                configuration.logger.info("""
                    \(replica) \(joins ? "joined" : "left") the in-sync set (\(why)); it is now \(next.inSync) \
                    (epoch \(next.epoch))
                    """)
            case .conflict:
                if joins { leading.tracker.remove(replica) }
                return nil
            }
        }
        return (current, revision)
    }

    /// A connection reached this node's endpoint: served while it leads, refused otherwise.
    private func accept(_ connection: ReplicationConnection) {
        guard let leading = state.withLock({ $0.leading }) else {
            telemetry.refused(.notLeader)
            connection.send(.refuse(.notLeader, "this node does not lead"))
            connection.close()
            return
        }
        // The window stays within what a follower's pending buffer takes (the group's replicas share options).
        var requests: (@Sendable ([UInt8]) async -> [UInt8])?
        if let service = configuration.leaderService {
            requests = { body in await service.handle(request: body) }
        }
        let session = LeaderSession(log: leading.log, history: leading.history, epoch: leading.epoch,
                                    tracker: leading.tracker, windowBytes: min(4 << 20, configuration.options.pendingBytesMax),
                                    runBytesMax: min(256 << 10, configuration.options.pendingBytesMax / 4),
                                    requests: requests, snapshots: configuration.snapshots,
                                    sendInTurn: connection.sendAndWait, onRefusal: telemetry.refused, send: connection.send)
        let peer = Peer(session: session, connection: connection)
        leading.peers.withLock { $0.append(peer) }
        connection.deliver { message in
            if let message { session.receive(message) } else { peer.closed.withLock { $0 = true } }
        }
    }

    // MARK: - Following

    private func follow(_ leader: ReplicaIdentity, epoch: UInt64, log logIdentity: LogIdentity) async throws {
        guard let known = identity, let address = configuration.resolve(leader.member) else {
            try await Task.sleep(for: configuration.tick)
            return
        }
        var options = configuration.options
        options.isReplica = true
        options.identity = logIdentity
        options.confirmsWaitForReplicas = false
        let directory = configuration.directory, snapshots = configuration.snapshots
        let logOptions = options
        let (log, incarnation) = try await onOwnThread { () throws(WALError) -> (WriteAheadLog, UInt64) in
            // A snapshot install that failed in an earlier session is undone before the log opens.
            try SnapshotInstall.finishInterrupted(directory: directory)
            let log = try WriteAheadLog.open(directory: directory, options: logOptions)
            do throws(WALError) {
                // A new incarnation when this open cut records the replica may have acknowledged.
                return (log, try Incarnation.loadOrCreate(directory: directory))
            } catch {
                try? log.close()
                throw error
            }
        }
        let me = ReplicaIdentity(member: known.member, incarnation: incarnation)
        if me != known { state.withLock { $0.identity = me } }
        let connection: ReplicationConnection
        do {
            connection = try await ReplicationDialer.connect(host: address.host, port: address.port, group: group)
        } catch {
            try? await onOwnThread { () throws(WALError) in try log.close() }
            throw error
        }
        let closed = Mutex(false)
        let session: FollowerSession
        let telemetry = self.telemetry
        do {
            // The session reads the epoch history file: off the cooperative pool.
            session = try await onOwnThread { () throws(WALError) in
                try FollowerSession(
                    log: log, configuration: .init(directory: directory, options: logOptions, replica: me, leaderEpoch: epoch,
                                                   snapshots: snapshots, onRefusal: telemetry.refused),
                    send: connection.send)
            }
        } catch {
            connection.close()
            try? await onOwnThread { () throws(WALError) in try log.close() }
            throw error
        }
        connection.deliver { message in
            if let message {
                session.receive(message)
            } else {
                closed.withLock { $0 = true }
                session.connectionClosed()
            }
        }
        await onOwnThread { session.start() }
        state.withLock { s in
            s.followerLog = log
            s.followerSession = session
        }
        setRole(.follower(of: leader.member, epoch: epoch))
        while !stopping, !closed.withLock({ $0 }), session.ending == nil {
            state.withLock { $0.followerLog = session.log }
            let snapshot = try? await coordinator.read()
            if let snapshot, snapshot.holder?.identity != leader || snapshot.state?.epoch != epoch { break }
            try await Task.sleep(for: configuration.tick)
        }
        connection.close()
        session.connectionClosed()
        state.withLock { s in
            s.followerLog = nil
            s.followerSession = nil
        }
        setRole(.candidate)
        let current = session.log
        try? await onOwnThread { () throws(WALError) in try current.close() }
    }

    // MARK: - The lease

    /// Whether this node's lease still holds as far as it knows: not reported gone, and renewed within two thirds
    /// of its TTL.
    private func leaseHolds() -> Bool {
        #if REPLICATION_BROKEN_IGNORES_LEASE_DEADLINE  // BROKEN ON PURPOSE (harness check builds only)
        return true
        #endif
        return state.withLock { s in !s.leaseLost && ContinuousClock.now - s.lastRenewed < configuration.leaseTTL * 2 / 3 }
    }

    /// Renews the lease a third of its TTL apart; notes when it is gone.
    private func renew(_ lease: LeaseHolder) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.leaseTTL / 3)
            do {
                if try await coordinator.renew(lease.id) == nil {
                    state.withLock { $0.leaseLost = true }
                } else {
                    state.withLock { $0.lastRenewed = .now }
                }
            } catch {
                // The coordinator cannot be asked: keep trying; a leader's fenced writes fail meanwhile.
            }
        }
    }
}

/// The node's current lease (replaced when one lapsed).
private final class LeaseHolder: Sendable {
    private let value: Mutex<LeaseID>
    init(_ id: LeaseID) { value = Mutex(id) }
    var id: LeaseID {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
