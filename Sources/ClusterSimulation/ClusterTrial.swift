import Coordination
import DurableLog
import LogFormat
import Replication
import Synchronization
import WALSimulation

/// One seeded run of a replicated log of three replicas, each on its own `SimulatedDisk`, electing through the
/// in-memory coordinator and talking through the simulated network, while the seed chooses what happens at
/// each step: appends to the leader, message deliveries in any interleaving of the connections, broken
/// connections, a follower cut off for a while (the leader drops it from the in-sync set and commits without
/// it; it rejoins once caught up), a follower's power loss (it may come back as a new replica: a damaged tail
/// that its leader's watermark vouched for makes it cut and rejoin, `ReplicaRejoinMarker`), a follower's lost
/// disk (it comes back empty, a new incarnation, and joins the in-sync set only once caught up), and the
/// leader's power loss followed by an election. Then the network heals and everything is delivered. What it
/// checks:
/// - at every election, the new leader holds every record confirmed so far (commit waits for every in-sync
///   replica, and only in-sync replicas are elected);
/// - epochs only go up;
/// - at the end, every replica holds every confirmed record, and every follower's segments are its
///   leader's byte for byte.
/// The logs have no threads of their own (`LogOptions.threadless`): the seed also decides when each replica
/// writes and when it syncs, and every walk whose order draws on the seed goes in sorted order, so a seed replays its
/// run exactly, in any process (`Outcome.fingerprint`: the trace, the counts and every disk's bytes).
public struct ClusterTrial: Sendable {
    public var seed: UInt64
    public var steps = 120
    public var replicas = 3

    public init(seed: UInt64) { self.seed = seed }

    public struct Outcome: Sendable {
        public var confirmed = 0
        public var elections = 0
        public var powerLosses = 0
        public var connectionsCut = 0
        public var disksLost = 0
        public var partitions = 0
        /// Connections that lost one direction for a while (the follower's acknowledgements, or the leader's
        /// frames), the other still delivering, until the follower reconnected.
        public var oneWayCuts = 0
        /// Failovers whose old leader was paused, not powered off: it woke under the new leader's epoch and went
        /// on taking writes, with a follower that had not noticed yet, until it learned it had lost.
        public var deposedLeadersWoken = 0
        /// Changes of the in-sync set the leader made (fenced): removals and additions.
        public var inSyncChanges = 0
        public var cutsOnRejoin = 0
        /// Followers whose recovery cut records a later frame vouched for, and which rejoined as new replicas.
        public var rejoinsAsNew = 0
        /// Nil when every check held; otherwise the first that failed.
        public var failure: String?
        /// What happened to roles, disks and the in-sync set, step by step.
        public var trace: [String] = []
        /// Each replica's `SimulatedDisk.fingerprint` at the end.
        public var diskFingerprints: [UInt64] = []

        /// One digest of the run (the trace, the counts, every disk's bytes): two runs of a seed agree on it.
        public var fingerprint: UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
            func mix(_ value: UInt64) {
                for shift in stride(from: 0, to: 64, by: 8) { hash = (hash ^ (value >> UInt64(shift) & 0xff)) &* 0x100_0000_01b3 }
            }
            for event in trace { for byte in event.utf8 { mix(UInt64(byte)) } }
            for value in [confirmed, elections, powerLosses, connectionsCut, disksLost, partitions, oneWayCuts,
                          deposedLeadersWoken, inSyncChanges, cutsOnRejoin, rejoinsAsNew] { mix(UInt64(value)) }
            for disk in diskFingerprints { mix(disk) }
            return hash
        }
    }

    public func run() async -> Outcome {
        let cluster = Cluster(seed: seed, replicas: replicas)
        return await cluster.run(steps: steps)
    }
}

/// The options of every replica's log: small segments and buffers, so that short runs roll and fill them; no
/// threads (the trial runs each log's I/O when its seed says).
let trialOptions: LogOptions = {
    var options = PowerLossTrial.defaultOptions
    options.threadless = true
    return options
}()
let trialDirectory = "/sim/log"

/// A replica of the simulated cluster: its disk, and its log as leader or follower.
final class SimulatedReplica {
    var identity: ReplicaIdentity
    var disk = SimulatedDisk()
    var lease: LeaseID?
    var leading: Leading?
    var following: (session: FollowerSession, connection: Int)?
    /// The replica's log now (a follower's session reopens it after a cut).
    var log: WriteAheadLog? { leading?.log ?? following?.session.log }

    init(identity: ReplicaIdentity) { self.identity = identity }

    /// Takes the incarnation its disk names (a new one for a new disk, or after its log cut records it may
    /// have acknowledged).
    func takeIncarnation(fresh: UInt64) throws(WALError) {
        #if SIMULATION_BROKEN_UNSEEDED_INCARNATION  // BROKEN ON PURPOSE (harness check builds only): not from the seed
        let fresh = ReplicaIdentity.newIncarnation()
        #endif
        let incarnation = try Incarnation.loadOrCreate(directory: trialDirectory, fileSystem: disk, fresh: fresh)
        identity = ReplicaIdentity(member: identity.member, incarnation: incarnation)
    }

    /// What a leader holds.
    final class Leading: Sendable {
        let log: WriteAheadLog
        let history: EpochHistory
        let epoch: UInt64
        let tracker: InSyncTracker
        let sessions = Mutex<[Int: LeaderSession]>([:])
        /// The sessions by connection id (a dictionary's own order is not the same from one run to the next).
        var sessionsInOrder: [LeaderSession] {
            sessions.withLock { $0.sorted { $0.key < $1.key }.map(\.value) }
        }

        init(log: WriteAheadLog, history: EpochHistory, epoch: UInt64, tracker: InSyncTracker) {
            self.log = log
            self.history = history
            self.epoch = epoch
            self.tracker = tracker
        }
    }
}

final class Cluster: @unchecked Sendable {
    private var rng: SplitMix64
    private let coordinator = InMemoryCoordinator(clock: ManualClock())
    private let network = SimulatedNetwork()
    private var replicas: [SimulatedReplica]
    private var leaderIndex = 0
    private var outcome = ClusterTrial.Outcome()
    private let confirmed = ConfirmedRecords()
    private var appended = 0
    private var logIdentity: LogIdentity
    private var lastEpoch: UInt64 = 0
    /// Followers cut off from the leader, with the steps until they reconnect.
    private var partitioned: [String: Int] = [:]
    /// A deposed leader that woke up and still leads in its own eyes, the connection of the follower that still
    /// follows it, and the steps until it learns it lost.
    private var deposed: (replica: SimulatedReplica, leading: SimulatedReplica.Leading, staleConnection: Int, steps: Int)?
    /// What a deposed leader confirmed (by LSN in its own log): each must be in the group's log at the end.
    private let confirmedByDeposed = ConfirmedRecords()
    /// What happened to roles, disks and the in-sync set, for the report of a failed trial and the check that
    /// a seed replays exactly.
    private var trace: [String] = []
    private var stepNumber = 0

    private func note(_ event: @autoclosure () -> String) { trace.append("\(stepNumber): \(event())") }

    private var highestConfirmed: LSN { confirmed.map.withLock { $0.keys.max() } ?? .none }

    init(seed: UInt64, replicas count: Int) {
        rng = SplitMix64(seed: seed)
        logIdentity = LogIdentity(high: rng.next(), low: rng.next())
        replicas = (0..<count).map { SimulatedReplica(identity: ReplicaIdentity(member: "r\($0)", incarnation: UInt64($0 + 1))) }
    }

    private struct Failure: Error { var text: String }

    func run(steps: Int) async -> ClusterTrial.Outcome {
        do {
            for replica in replicas {
                try replica.takeIncarnation(fresh: rng.next())
                replica.lease = try await coordinator.grantLease(ttl: .seconds(2)).id
            }
            try await elect(replicas[0])
            for replica in replicas.dropFirst() { try open(follower: replica) }
            for n in 0..<steps {
                stepNumber = n
                try await step()
            }
            try await heal()
        } catch let failure as Failure {
            outcome.failure = failure.text
        } catch {
            outcome.failure = "\(error)"
        }
        for replica in replicas { try? replica.log?.close() }
        outcome.confirmed = confirmed.map.withLock { $0.count }
        outcome.trace = trace
        outcome.diskFingerprints = replicas.map(\.disk.fingerprint)
        if outcome.failure == nil { outcome.failure = compareReplicas() }
        if let failure = outcome.failure {
            outcome.failure = failure + "\ntrace (step: event), the last 60:\n  " + trace.suffix(60).joined(separator: "\n  ")
        }
        return outcome
    }

    private func step() async throws {
        if let d = deposed {
            if d.steps <= 0 { try endDeposedLeadership() } else { deposed?.steps -= 1 }
        }
        switch rng.next() % 100 {
        case 0..<35:
            append(1 + Int(rng.next() % 8))
            if let d = deposed, rng.next() % 2 == 0 { append(1 + Int(rng.next() % 4), to: d.leading.log, confirmed: confirmedByDeposed) }
        case 35..<80: for _ in 0..<(1 + rng.next() % 24) { _ = network.deliverOne(&rng) }
        case 80..<86:
            let follower = randomFollower()
            try reconnect(follower)
            outcome.connectionsCut += 1
        case 86:
            partition(randomFollower())
        case 87:
            cutOneWay(randomFollower())
        case 88..<93:
            try powerLoss(randomFollower())
        case 93..<95:
            try wipe(randomFollower())
        default:
            if deposed == nil, rng.next() % 3 == 0 { try await failoverWhileTheLeaderIsPaused() } else { try await failover() }
        }
        performSomeIO()
        try endPartitions(after: 1)
        try await keepInSyncSet()
    }

    /// Each replica's log does what an I/O thread would do next with probability 3/4: writes what is pending,
    /// runs one sync, or both. The seed decides how far each disk lags its log, and a power loss may find
    /// written records not yet synced (a crash image then drops, cuts, tears or garbles them).
    private func performSomeIO() {
        for replica in replicas {
            switch rng.next() % 8 {
            case 0, 1: continue
            case 2, 3: _ = replica.log?.performIO(write: true, sync: false)
            case 4: _ = replica.log?.performIO(write: false, sync: true)
            default: _ = replica.log?.performIO()
            }
        }
    }

    /// Cuts a follower off from the leader for a few steps (its log stays open; the leader drops it from the
    /// in-sync set meanwhile).
    private func partition(_ replica: SimulatedReplica) {
        guard let following = replica.following, partitioned[replica.identity.member] == nil else { return }
        network.cut(following.connection)
        replicas[leaderIndex].leading?.sessions.withLock { _ = $0.removeValue(forKey: following.connection) }
        partitioned[replica.identity.member] = 3 + Int(rng.next() % 12)
        note("follower \(replica.identity) cut off for \(partitioned[replica.identity.member]!) steps")
        outcome.partitions += 1
    }

    /// One direction of a follower's connection is lost for a few steps: the leader still ships and the follower
    /// still writes, but its acknowledgements are dropped, or the leader's frames are. Its session stays up, so it
    /// stays in the in-sync set and the commit point waits for it (what fences a stalled follower out on real
    /// machines is `inSyncLagTime`, which `ReplicaNode` keeps); then it reconnects, as a TCP timeout would make it.
    private func cutOneWay(_ replica: SimulatedReplica) {
        guard let following = replica.following, partitioned[replica.identity.member] == nil else { return }
        let toLeader = rng.next() % 2 == 0
        network.cutOneWay(following.connection, toLeader: toLeader)
        partitioned[replica.identity.member] = 3 + Int(rng.next() % 12)
        note("follower \(replica.identity) loses its \(toLeader ? "acknowledgements" : "leader's frames") for "
             + "\(partitioned[replica.identity.member]!) steps")
        outcome.oneWayCuts += 1
    }

    /// Counts the partitions down by `steps`; reconnects the followers whose partition ended (a connection cut
    /// one way is closed first, as `reconnect` does).
    private func endPartitions(after steps: Int) throws {
        for member in partitioned.keys.sorted() {
            guard let left = partitioned[member] else { continue }
            if left > steps {
                partitioned[member] = left - steps
                continue
            }
            partitioned[member] = nil
            if let replica = replicas.first(where: { $0.identity.member == member }), replica.leading == nil,
               let following = replica.following {
                network.cut(following.connection)
                replicas[leaderIndex].leading?.sessions.withLock { _ = $0.removeValue(forKey: following.connection) }
                try connect(replica, log: following.session.log)
            }
        }
    }

    private func randomFollower() -> SimulatedReplica {
        let followers = replicas.indices.filter { $0 != leaderIndex }
        return replicas[followers[Int(rng.next() % UInt64(followers.count))]]
    }

    // MARK: - Appends

    private func append(_ count: Int) {
        guard let log = replicas[leaderIndex].leading?.log else { return }
        append(count, to: log, confirmed: confirmed)
    }

    private func append(_ count: Int, to log: WriteAheadLog, confirmed: ConfirmedRecords) {
        for _ in 0..<count {
            let record = PowerLossTrial.record(seed: rng.next(), stream: 0, index: appended)
            appended += 1
            _ = try? record.withUnsafeBytes { bytes in
                try log.append(bytes) { [confirmed] result in
                    if case .success(let lsn) = result { confirmed.map.withLock { $0[lsn] = record } }
                }
            }
        }
    }

    // MARK: - Roles

    /// Makes `replica` leader: claims through the coordinator (only an in-sync replica can), opens its log as
    /// the leader of the next epoch, and checks that it holds every confirmed record.
    private func elect(_ replica: SimulatedReplica) async throws {
        let snapshot = try await coordinator.read()
        guard case .claim(let state, let expecting) = ElectionRule.step(snapshot, me: replica.identity, log: logIdentity) else {
            throw Failure(text: "\(replica.identity) may not claim: \(snapshot)")
        }
        guard case .won = try await coordinator.claimLeadership(state: state, holder: replica.identity,
                                                                 lease: replica.lease!, expecting: expecting) else {
            throw Failure(text: "\(replica.identity) lost a claim nobody contested")
        }
        if let text = state.log, let identity = LogIdentity(text) { logIdentity = identity }
        guard state.epoch > lastEpoch else { throw Failure(text: "epoch \(state.epoch) after \(lastEpoch)") }
        lastEpoch = state.epoch
        if let following = replica.following {
            network.cut(following.connection)
            try following.session.log.close()
            replica.following = nil
        }
        partitioned = [:]  // a new leader: every follower connects to it
        var options = trialOptions
        options.leaderEpoch = state.epoch
        options.confirmsWaitForReplicas = true
        options.identity = logIdentity
        let log = try WriteAheadLog.open(directory: trialDirectory, options: options, fileSystem: replica.disk)
        for (lsn, bytes) in confirmed.map.withLock({ $0 }) where (try? log.read(lsn)) != bytes {
            throw Failure(text: "the new leader \(replica.identity) of epoch \(state.epoch) lacks confirmed LSN \(lsn)")
        }
        var history = try EpochHistory.load(directory: trialDirectory, fileSystem: replica.disk)
        history.truncate(from: log.durableLSN.next)
        try history.begin(epoch: state.epoch, at: log.durableLSN.next)
        try history.save(directory: trialDirectory, fileSystem: replica.disk)
        let tracker = InSyncTracker(log: log, inSync: Set(state.inSync).subtracting([replica.identity]),
                                    minInsyncReplicas: 2, joinFloor: log.durableLSN.next)
        note("\(replica.identity) leads epoch \(state.epoch) from end \(log.durableLSN.next) (its last watermark "
             + "\(log.lastFrameWatermark)); in sync \(state.inSync); highest confirmed \(highestConfirmed); epochs \(history.entries)")
        let leading = SimulatedReplica.Leading(log: log, history: history, epoch: state.epoch, tracker: tracker)
        log.observeWrites { [leading] in for session in leading.sessionsInOrder { session.pump() } }
        replica.leading = leading
        leaderIndex = replicas.firstIndex { $0 === replica }!
        outcome.elections += 1
    }

    /// Opens `replica`'s log as a follower and connects it to the leader.
    private func open(follower replica: SimulatedReplica) throws {
        var options = trialOptions
        options.isReplica = true
        options.identity = logIdentity
        let log = try WriteAheadLog.open(directory: trialDirectory, options: options, fileSystem: replica.disk)
        if log.recoveryReport.replicaCut != nil { outcome.rejoinsAsNew += 1 }
        note("\(replica.identity) opens as a follower: end \(log.durableLSN.next), watermark \(log.lastFrameWatermark)"
             + (log.recoveryReport.replicaCut != nil ? ", cut as a new replica" : ""))
        do {
            try replica.takeIncarnation(fresh: rng.next())
        } catch {
            try? log.close()
            throw error
        }
        try connect(replica, log: log)
    }

    private func connect(_ replica: SimulatedReplica, log: WriteAheadLog) throws {
        guard let leading = replicas[leaderIndex].leading else { throw Failure(text: "no leader") }
        let id = network.open()
        let leaderSession = LeaderSession(log: leading.log, history: leading.history, epoch: leading.epoch,
                                          tracker: leading.tracker, windowBytes: 16 << 10, runBytesMax: 6 << 10,
                                          send: network.sender(id, toLeader: false))
        var options = trialOptions
        options.isReplica = true
        options.identity = logIdentity
        let session = try FollowerSession(
            log: log, configuration: .init(directory: trialDirectory, options: options, fileSystem: replica.disk,
                                           replica: replica.identity, leaderEpoch: leading.epoch),
            send: network.sender(id, toLeader: true))
        network.attach(id, leader: leaderSession, follower: session)
        leading.sessions.withLock { $0[id] = leaderSession }
        replica.following = (session, id)
        session.start()
    }

    /// Breaks a follower's connection and opens a new one (its log stays open; the new session rejoins).
    private func reconnect(_ replica: SimulatedReplica) throws {
        guard let following = replica.following else { return }
        partitioned[replica.identity.member] = nil
        network.cut(following.connection)
        replicas[leaderIndex].leading?.sessions.withLock { _ = $0.removeValue(forKey: following.connection) }
        try connect(replica, log: following.session.log)
    }

    /// The follower's disk loses power; it comes back with what the power cut left and rejoins.
    private func powerLoss(_ replica: SimulatedReplica) throws {
        guard let following = replica.following else { return }
        note("follower \(replica.identity) loses power at end \(following.session.log.durableLSN.next)")
        partitioned[replica.identity.member] = nil
        network.cut(following.connection)
        replicas[leaderIndex].leading?.sessions.withLock { _ = $0.removeValue(forKey: following.connection) }
        replica.disk.crash()
        try? following.session.log.close()
        replica.following = nil
        replica.disk = replica.disk.crashImage(seed: rng.next())
        outcome.powerLosses += 1
        try open(follower: replica)
    }

    /// The follower's disk is lost: it comes back empty with a new incarnation, a replica the group has not
    /// seen, outside the in-sync set until it holds everything committed.
    private func wipe(_ replica: SimulatedReplica) throws {
        guard let following = replica.following else { return }
        note("follower \(replica.identity) loses its disk")
        partitioned[replica.identity.member] = nil
        network.cut(following.connection)
        replicas[leaderIndex].leading?.sessions.withLock { _ = $0.removeValue(forKey: following.connection) }
        try? following.session.log.close()
        replica.following = nil
        replica.disk = SimulatedDisk()
        outcome.disksLost += 1
        try open(follower: replica)
    }

    /// The leader's disk loses power; its lease lapses; an in-sync follower is elected; the old leader comes
    /// back with what the power cut left and follows.
    private func failover() async throws {
        try endDeposedLeadership()
        let old = replicas[leaderIndex]
        guard let leading = old.leading else { return }
        note("the leader \(old.identity) loses power: durable end \(leading.log.durableLSN.next), committed "
             + "\(leading.log.committedLSN), highest confirmed \(highestConfirmed); in sync (tracker) \(leading.tracker.inSync.sorted { ($0.member, $0.incarnation) < ($1.member, $1.incarnation) })")
        for id in leading.sessions.withLock({ Array($0.keys) }) { network.cut(id) }
        leading.log.observeWrites(nil)
        old.disk.crash()
        try? leading.log.close()
        old.leading = nil
        old.disk = old.disk.crashImage(seed: rng.next())
        outcome.powerLosses += 1
        try await coordinator.revoke(old.lease!)
        old.lease = try await coordinator.grantLease(ttl: .seconds(2)).id
        // The first the election rule lets claim leads (only one in sync).
        let (_, candidates) = try await successors(of: old)
        guard !candidates.isEmpty else {
            // No other in-sync replica: only the old leader may lead again (an unclean election would lose
            // confirmed records). It comes back from its disk.
            try await elect(old)
            for replica in replicas where replica !== old {
                if let following = replica.following { network.cut(following.connection); try connect(replica, log: following.session.log) }
            }
            return
        }
        try await elect(candidates[0])
        try open(follower: old)
        for replica in replicas where replica !== old && replica.leading == nil {
            guard let following = replica.following else { continue }
            network.cut(following.connection)
            try connect(replica, log: following.session.log)
        }
    }

    /// The replicas other than `old` in a seeded order, and those of them the election rule lets claim now.
    private func successors(of old: SimulatedReplica) async throws -> (others: [SimulatedReplica], candidates: [SimulatedReplica]) {
        let snapshot = try await coordinator.read()
        var others = replicas.filter { $0 !== old }
        if rng.next() % 2 == 0 { others.reverse() }
        let candidates = others.filter {
            if case .claim = ElectionRule.step(snapshot, me: $0.identity, log: logIdentity) { true } else { false }
        }
        return (others, candidates)
    }

    /// The leader pauses past its lease (a stopped process, not a power cut): an in-sync follower claims and is
    /// elected. The other follower has not noticed yet and stays with the old leader, which wakes up and goes on
    /// taking writes for a few steps, shipping them to that follower, which writes and acknowledges them. It may
    /// confirm only what the new leader had acknowledged before the pause (its commit needs every member of its
    /// in-sync set, the new leader among them, which no longer answers it); `heal` checks that whatever it
    /// confirmed is in the group's log. Then it learns it lost (`endDeposedLeadership`).
    private func failoverWhileTheLeaderIsPaused() async throws {
        let old = replicas[leaderIndex]
        guard let leading = old.leading else { return }
        // Its lease lapses while it is paused (a failover below gives it up again: harmless).
        try await coordinator.revoke(old.lease!)
        old.lease = try await coordinator.grantLease(ttl: .seconds(2)).id
        let (others, candidates) = try await successors(of: old)
        guard let next = candidates.first,
              let stale = others.first(where: { $0 !== next && partitioned[$0.identity.member] == nil }),
              let staleConnection = stale.following?.connection else { return try await failover() }
        // The new leader stops hearing from the old one (it is paused, then deposed); the stale follower does not.
        if let connection = next.following?.connection {
            network.cut(connection)
            leading.sessions.withLock { _ = $0.removeValue(forKey: connection) }
        }
        note("the leader \(old.identity) pauses past its lease: durable end \(leading.log.durableLSN.next), committed "
             + "\(leading.log.committedLSN); \(stale.identity) still follows it")
        old.leading = nil
        try await elect(next)
        old.leading = leading  // awake, and leading in its own eyes
        deposed = (old, leading, staleConnection, 2 + Int(rng.next() % 8))
        outcome.deposedLeadersWoken += 1
    }

    /// The deposed leader learns it lost (its lease is gone): it closes its log (what it took and did not
    /// confirm ends there) and rejoins the new leader, and so does the follower that stayed with it; both cut
    /// the deposed leader's records of its old epoch on rejoining.
    private func endDeposedLeadership() throws {
        guard let d = deposed else { return }
        deposed = nil
        for id in d.leading.sessions.withLock({ Array($0.keys) }) { network.cut(id) }
        d.leading.log.observeWrites(nil)
        note("the deposed leader \(d.replica.identity) learns it lost: end \(d.leading.log.durableLSN.next), committed "
             + "\(d.leading.log.committedLSN)")
        try? d.leading.log.close()
        d.replica.leading = nil
        try open(follower: d.replica)
        if let stale = replicas.first(where: { $0.following?.connection == d.staleConnection }),
           let following = stale.following {
            try connect(stale, log: following.session.log)
        }
    }

    /// The leader removes replicas that are gone (a lost disk's old incarnation) from the in-sync set, and adds
    /// followers that hold everything committed (each a fenced state change).
    private func keepInSyncSet() async throws {
        let leader = replicas[leaderIndex]
        guard let leading = leader.leading else { return }
        // Gone: a lost disk's old incarnation, or a follower cut off from this leader (no live session).
        let connected = Set(leading.sessions.withLock { $0.values.compactMap { $0.refusal == nil ? $0.follower : nil } })
        let reachable = Set(replicas.filter { partitioned[$0.identity.member] == nil }.map(\.identity))
        let inSync = leading.tracker.inSync.sorted { ($0.member, $0.incarnation) < ($1.member, $1.incarnation) }
        for gone in inSync where !reachable.contains(gone) && !connected.contains(gone) {
            let snapshot = try await coordinator.read()
            guard var state = snapshot.state, let revision = snapshot.stateRevision else { continue }
            state.inSync.removeAll { $0 == gone }
            if case .applied = try await coordinator.updateState(state, lease: leader.lease!, expecting: revision) {
                leading.tracker.remove(gone)
                outcome.inSyncChanges += 1
                note("\(gone) leaves the in-sync set; committed \(leading.log.committedLSN)")
            }
        }
        for session in leading.sessionsInOrder {
            guard let follower = session.follower, leading.tracker.mayJoin(follower),
                  !leading.tracker.inSync.contains(follower) else { continue }
            let snapshot = try await coordinator.read()
            guard var state = snapshot.state, let revision = snapshot.stateRevision, !state.inSync.contains(follower),
                  leading.tracker.join(follower) else { continue }
            state.inSync.append(follower)
            if !state.members.contains(follower) { state.members.append(follower) }
            if case .applied = try await coordinator.updateState(state, lease: leader.lease!, expecting: revision) {
                outcome.inSyncChanges += 1
                note("\(follower) joins the in-sync set, acknowledged \(leading.tracker.acknowledged(by: follower)); "
                     + "leader durable end \(leading.log.durableLSN.next), committed \(leading.log.committedLSN)")
            } else {
                leading.tracker.remove(follower)
            }
        }
    }

    // MARK: - The end

    /// Delivers everything, waiting for the logs' acknowledgements, until every follower holds the leader's log.
    private func heal() async throws {
        try endDeposedLeadership()
        try endPartitions(after: Int.max)
        guard let leading = replicas[leaderIndex].leading else { return }
        // The last steps' appends may still be on their way into the leader's log: shipping follows its writes.
        leading.log.waitUntilAcceptedIsDurable()
        var quietRounds = 0
        while quietRounds < 2 {
            var progress = false
            while network.deliverOne(&rng) { progress = true }
            for replica in replicas where replica.log?.performIO() == true { progress = true }
            try await keepInSyncSet()
            let caughtUp = replicas.allSatisfy { ($0.following?.session.log.durableLSN ?? leading.log.durableLSN) == leading.log.durableLSN }
            if caughtUp && network.queued == 0 && leading.log.durableLSN == leading.log.committedLSN { break }
            // Nothing left to deliver or write twice in a row, and not caught up: the checks below say where.
            quietRounds = progress ? 0 : quietRounds + 1
        }
        for (lsn, bytes) in confirmedByDeposed.map.withLock({ $0 }) where (try? leading.log.read(lsn)) != bytes {
            throw Failure(text: "a deposed leader confirmed LSN \(lsn), which the group does not hold")
        }
        for replica in replicas {
            guard let log = replica.log else { continue }
            for (lsn, bytes) in confirmed.map.withLock({ $0 }) where (try? log.read(lsn)) != bytes {
                throw Failure(text: "\(replica.identity) lacks confirmed LSN \(lsn) at the end")
            }
            if log.durableLSN != leading.log.durableLSN {
                throw Failure(text: "\(replica.identity) ends at \(log.durableLSN), the leader at \(leading.log.durableLSN); "
                              + "its session: \(replica.following.map { "\($0.session.debugState) \($0.session.ending as Any), history \($0.session.history.entries)" } ?? "none"), "
                              + "the leader's history \(leading.history.entries); leader sessions: "
                              + leading.sessions.withLock { $0.map { "\($0.key): \($0.value.follower as Any) \($0.value.debugState)" }.joined(separator: "; ") }
                              + "; queued \(network.queued); follower connection \(replica.following?.connection as Any)"
                              + "; highest confirmed \(highestConfirmed)")
            }
        }
        outcome.cutsOnRejoin = replicas.reduce(0) { $0 + ($1.following?.session.cuts ?? 0) }
    }

    /// Every follower's segments are its leader's, byte for byte (after the logs are closed), and
    /// `LogComparison` (`walctl compare`) agrees: no frame differs and every replica ends where the leader does.
    private func compareReplicas() -> String? {
        let leader = replicas[leaderIndex]
        do {
            let comparison = try LogComparison.compare(replicas.map { (trialDirectory, $0.disk) })
            if let difference = comparison.difference {
                return "LogComparison: replicas \(difference.replicas) differ at LSN \(difference.lsn): \(difference.frames)"
            }
            let ends = Set(comparison.replicas.map(\.endLSN))
            if ends.count != 1 { return "LogComparison: the replicas end at \(comparison.replicas.map(\.endLSN))" }
        } catch {
            return "LogComparison: \(error)"
        }
        for replica in replicas where replica !== leader {
            if let difference = replicaSegmentsDiffer(leader: trialDirectory, follower: trialDirectory,
                                                      leaderFileSystem: leader.disk, followerFileSystem: replica.disk) {
                return "\(replica.identity) differs from the leader: \(difference)"
            }
        }
        return nil
    }
}

/// The records the leader confirmed, by LSN (written by the logs' threads).
final class ConfirmedRecords: Sendable {
    let map = Mutex<[LSN: [UInt8]]>([:])
}
