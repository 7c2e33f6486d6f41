import Coordination
import DurableLog
import Foundation
import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import Replication

/// A fresh directory, removed when the value goes.
final class TemporaryDirectory: Sendable {
    let path = NSTemporaryDirectory() + "replication-test-" + UUID().uuidString
    init() { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ name: String) -> String { path + "/" + name }
}

func record(_ stream: Int, _ index: Int) -> [UInt8] {
    PowerLossTrial.record(seed: 11, stream: stream, index: index)
}

/// Small (64 KiB) segments, so that replication crosses segment rolls.
let testOptions = PowerLossTrial.defaultOptions

/// One replica's directory and its open log in a test cluster.
struct Node {
    let name: String
    let directory: String
    var identity: ReplicaIdentity { ReplicaIdentity(member: name, incarnation: 1) }
}

/// A leader in a test: its log (replicated, confirms waiting for the in-sync followers), its epoch history
/// saved with its own epoch's start, its tracker, and one session per follower on the network.
final class TestLeader: Sendable {
    let log: WriteAheadLog
    let tracker: InSyncTracker
    let history: EpochHistory
    let epoch: UInt64
    let sessions = Mutex<[LeaderSession]>([])

    init(node: Node, epoch: UInt64, inSync: Set<ReplicaIdentity>, minInsyncReplicas: Int = 2,
         options: LogOptions = testOptions) throws {
        var options = options
        options.leaderEpoch = epoch
        options.confirmsWaitForReplicas = true
        log = try WriteAheadLog.open(directory: node.directory, options: options)
        var history = try EpochHistory.load(directory: node.directory)
        history.truncate(from: log.durableLSN.next)
        try history.begin(epoch: epoch, at: log.durableLSN.next)
        try history.save(directory: node.directory)
        self.history = history
        self.epoch = epoch
        tracker = InSyncTracker(log: log, inSync: inSync, minInsyncReplicas: minInsyncReplicas)
        log.observeWrites { [weak self] in for s in self?.sessions.withLock({ $0 }) ?? [] { s.pump() } }
    }

    func session(on network: InMemoryNetwork, connection: Int) -> LeaderSession {
        let session = session(send: network.sender(connection, toLeader: false))
        network.attach(connection, leader: session)
        return session
    }

    func session(send: @escaping @Sendable (ReplicationMessage) -> Void) -> LeaderSession {
        let session = LeaderSession(log: log, history: history, epoch: epoch, tracker: tracker, windowBytes: 16 << 10,
                                    runBytesMax: 6 << 10, send: send)
        sessions.withLock { $0.append(session) }
        return session
    }
}

func followerSession(_ node: Node, of leader: TestLeader, on network: InMemoryNetwork,
                     connection: Int) throws -> FollowerSession {
    let session = try followerSession(node, of: leader, send: network.sender(connection, toLeader: true))
    network.attach(connection, follower: session)
    session.start()
    return session
}

/// A follower's session (not started) over its log in `node`'s directory.
func followerSession(_ node: Node, of leader: TestLeader,
                     send: @escaping @Sendable (ReplicationMessage) -> Void) throws -> FollowerSession {
    var options = testOptions
    options.isReplica = true
    options.identity = leader.log.identity
    let log = try WriteAheadLog.open(directory: node.directory, options: options)
    return try FollowerSession(
        log: log, configuration: .init(directory: node.directory, options: options, replica: node.identity,
                                       leaderEpoch: leader.epoch),
        send: send)
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct ReplicationSessionTests {
    /// Three replicas: every confirm comes after both followers acknowledged the record as durable, and the
    /// followers' segments end up the leader's, byte for byte.
    @Test func aConfirmWaitsForEveryInSyncFollowerAndTheFollowersHoldTheLeadersBytes() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta", "gamma"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try TestLeader(node: nodes[0], epoch: 1, inSync: [nodes[1].identity, nodes[2].identity])
        var followers: [FollowerSession] = []
        for (i, node) in nodes.dropFirst().enumerated() {
            _ = leader.session(on: network, connection: i)
            followers.append(try followerSession(node, of: leader, on: network, connection: i))
        }
        let sessions = followers
        let early = await withTaskGroup(of: Int.self) { group in
            for s in 0..<6 {
                group.addTask {
                    var early = 0
                    for i in 0..<60 {
                        guard let lsn = try? await leader.log.append(record(s, i)) else { continue }
                        // Both followers made it durable before this confirm.
                        if sessions.contains(where: { $0.log.durableLSN < lsn }) { early += 1 }
                    }
                    return early
                }
            }
            return await group.reduce(0, +)
        }
        #expect(early == 0)
        #expect(leader.log.committedLSN == LSN(360))
        #expect(leader.log.segments.count >= 3)
        for follower in followers {
            #expect(follower.isFollowing)
            #expect(follower.log.durableLSN == LSN(360))
            #expect(follower.history.entries == [.init(epoch: 1, firstLSN: .first)])
        }
        for f in followers { try f.log.close() }
        try leader.log.close()
        for node in nodes.dropFirst() {
            #expect(replicaSegmentsDiffer(leader: nodes[0].directory, follower: node.directory) == nil)
        }
    }

    /// The leader loses its followers' connection to one of them, writes records only the other takes, and
    /// dies. The follower that lacks them is elected (it is in sync: those records were never committed); the
    /// other rejoins it, and the exchange cuts the records the new leader never had; then the deposed leader
    /// rejoins too. Every confirmed record is on every replica, and all three end byte-identical.
    @Test func rejoiningReplicasCutWhatTheNewLeaderNeverHadAndFollowItByteForByte() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta", "gamma"].map { Node(name: $0, directory: dir.sub($0)) }
        var confirmed: [LSN: [UInt8]] = [:]

        // Epoch 1: alpha leads, beta and gamma follow.
        let first = try TestLeader(node: nodes[0], epoch: 1, inSync: [nodes[1].identity, nodes[2].identity])
        var oldFollowers: [FollowerSession] = []
        for (i, node) in nodes.dropFirst().enumerated() {
            _ = first.session(on: network, connection: i)
            oldFollowers.append(try followerSession(node, of: first, on: network, connection: i))
        }
        for i in 0..<100 { confirmed[try await first.log.append(record(1, i))] = record(1, i) }
        // beta's connection breaks; alpha writes 30 more that only gamma takes (never committed: beta is in sync).
        network.cut(0)
        let unconfirmed = Mutex(0)
        for i in 0..<30 {
            try record(2, i).withUnsafeBytes { bytes in
                try first.log.append(bytes) { result in if case .failure = result { unconfirmed.withLock { $0 += 1 } } }
            }
        }
        let gammaSession = first.sessions.withLock { $0[1] }
        #expect(network.wait { gammaSession.acknowledged == LSN(131) },
                "leader's session: \(gammaSession.debugState); gamma: \(oldFollowers[1].debugState)")
        #expect(first.log.committedLSN == LSN(100))
        try first.log.close()  // alpha dies; its 30 unconfirmed appends fail
        #expect(unconfirmed.withLock { $0 } == 30)
        network.cut(1)
        for f in oldFollowers { try f.log.close() }

        // Epoch 2: beta (in sync, without the 30) leads; gamma and then alpha rejoin it.
        let second = try TestLeader(node: nodes[1], epoch: 2, inSync: [nodes[2].identity, nodes[0].identity])
        _ = second.session(on: network, connection: 10)
        let gamma = try followerSession(nodes[2], of: second, on: network, connection: 10)
        _ = second.session(on: network, connection: 11)
        let alpha = try followerSession(nodes[0], of: second, on: network, connection: 11)
        #expect(network.wait { gamma.isFollowing && alpha.isFollowing })
        #expect(gamma.cuts == 1 && alpha.cuts == 1, "each cut the 30 records of epoch 1 the new leader never had")
        for i in 0..<50 { confirmed[try await second.log.append(record(3, i))] = record(3, i) }
        #expect(second.log.committedLSN == LSN(150))
        for replica in [second.log, gamma.log, alpha.log] {
            #expect(replica.durableLSN == LSN(150))
            for (lsn, bytes) in confirmed { #expect(try replica.read(lsn) == bytes) }
        }
        #expect(gamma.history.entries.map(\.epoch) == [1, 2])
        try gamma.log.close()
        try alpha.log.close()
        try second.log.close()
        #expect(replicaSegmentsDiffer(leader: nodes[1].directory, follower: nodes[2].directory) == nil)
        #expect(replicaSegmentsDiffer(leader: nodes[1].directory, follower: nodes[0].directory) == nil)
    }

    /// A follower restarts holding records that are committed although its frames' watermark does not show it
    /// yet (a frame carries the commit point from when the leader wrote it). The epoch exchange keeps them;
    /// cutting to the watermark instead (Kafka before KIP-101) would drop committed records from an in-sync
    /// replica, which could then be elected without them.
    @Test func aRestartedFollowerKeepsCommittedRecordsItsWatermarkDoesNotShowYet() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try TestLeader(node: nodes[0], epoch: 1, inSync: [nodes[1].identity])
        _ = leader.session(on: network, connection: 0)
        let follower = try followerSession(nodes[1], of: leader, on: network, connection: 0)
        var confirmed: [LSN: [UInt8]] = [:]
        for i in 0..<80 { confirmed[try await leader.log.append(record(4, i))] = record(4, i) }
        network.cut(0)
        try follower.log.close()
        _ = leader.session(on: network, connection: 1)
        let restarted = try followerSession(nodes[1], of: leader, on: network, connection: 1)
        #expect(restarted.log.lastFrameWatermark < LSN(80), "the last frame was written before its records committed")
        #expect(network.wait { restarted.isFollowing })
        #expect(restarted.cuts == 0)
        for (lsn, bytes) in confirmed { #expect((try? restarted.log.read(lsn)) == bytes, "confirmed LSN \(lsn)") }
        try restarted.log.close()
        try leader.log.close()
    }

    /// A session made on a follower's log that stays open (a reconnect) keeps the epochs of runs an earlier
    /// session accepted whose sync has not returned yet: the history is cut to what the log accepted, not to
    /// what is durable. Cut to the durable end, the next save would write the history without those epochs
    /// while the log keeps their records (the cluster simulation found a replica whose history began at LSN 50,
    /// elected, make a rejoining replica cut records it had confirmed).
    @Test func aNewSessionOnAnOpenLogKeepsTheEpochsOfRunsNotDurableYet() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try TestLeader(node: nodes[0], epoch: 3, inSync: [nodes[1].identity])
        let disk = FaultInjectingFileSystem()
        var options = testOptions
        options.isReplica = true
        options.identity = leader.log.identity
        let log = try WriteAheadLog.open(directory: nodes[1].directory, options: options, fileSystem: disk)
        let configuration = FollowerSession.Configuration(directory: nodes[1].directory, options: options, fileSystem: disk,
                                                          replica: nodes[1].identity, leaderEpoch: 3)
        _ = leader.session(on: network, connection: 0)
        let first = try FollowerSession(log: log, configuration: configuration, send: network.sender(0, toLeader: true))
        network.attach(0, follower: first)
        first.start()
        #expect(network.wait { first.isFollowing })

        disk.holdSyncs(pathSuffix: ".wal")
        let records = (0..<5).map { record(9, $0) }
        let appends = Task { try await leader.log.append(contentsOf: records) }
        #expect(disk.waitForHeldSync(seconds: 20), "the follower writes the run and waits for its sync")
        #expect(log.acceptedEnd == LSN(6) && log.durableLSN < LSN(5))
        network.cut(0)
        let second = try FollowerSession(log: log, configuration: configuration, send: network.sender(1, toLeader: true))
        #expect(second.history.entries == [EpochHistory.Entry(epoch: 3, firstLSN: LSN(1))])

        disk.releaseSyncs()
        _ = leader.session(on: network, connection: 1)
        network.attach(1, follower: second)
        second.start()
        #expect(network.wait { second.isFollowing })
        #expect(second.cuts == 0)
        let firstLSN = try await appends.value
        for (i, bytes) in records.enumerated() { #expect(try second.log.read(LSN(firstLSN.rawValue + UInt64(i))) == bytes) }
        #expect(try EpochHistory.load(directory: nodes[1].directory).entries == [EpochHistory.Entry(epoch: 3, firstLSN: LSN(1))])
        try second.log.close()
        try leader.log.close()
    }

    /// An epoch that the history file holds past the follower's log (begun where the log ends: a power cut took
    /// its records, or its leader wrote none) leaves the file when a session opens, not only the session's copy:
    /// kept, it would come back with the next load and, once the replica holds another epoch's records there,
    /// make it answer as a leader that the earlier epoch ended before them (the cluster simulation found a
    /// rejoining replica refused, `cutBelowCommitted`, for exactly this).
    @Test func aSessionSavesTheHistoryWithoutTheEpochsPastTheLogsEnd() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try TestLeader(node: nodes[0], epoch: 2, inSync: [nodes[1].identity])
        _ = leader.session(on: network, connection: 0)
        let follower = try followerSession(nodes[1], of: leader, on: network, connection: 0)
        _ = try await leader.log.append(contentsOf: (0..<5).map { record(10, $0) })
        network.cut(0)
        try follower.log.close()
        // As if this replica had been elected for epoch 3 and had lost power before writing anything of it.
        var history = try EpochHistory.load(directory: nodes[1].directory)
        #expect(history.entries == [EpochHistory.Entry(epoch: 2, firstLSN: LSN(1))])
        try history.begin(epoch: 3, at: LSN(6))
        try history.save(directory: nodes[1].directory)

        let session = try followerSession(nodes[1], of: leader) { _ in }
        #expect(session.history.entries == [EpochHistory.Entry(epoch: 2, firstLSN: LSN(1))])
        #expect(try EpochHistory.load(directory: nodes[1].directory).entries == [EpochHistory.Entry(epoch: 2, firstLSN: LSN(1))])
        try session.log.close()
        try leader.log.close()
    }

    /// Writes made on a follower go to the leader over the replication connection and are answered with the
    /// LSN once committed; refused before anything is written when the in-sync set is too small; and
    /// indeterminate when the connection ends before the answer (the leader may still commit them).
    @Test func aFollowerForwardsWritesAndLearnsWhatBecameOfThem() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta", "gamma"].map { Node(name: $0, directory: dir.sub($0)) }

        // alpha leads, beta in sync: forwarded writes commit once both hold them.
        let leader = try TestLeader(node: nodes[0], epoch: 1, inSync: [nodes[1].identity])
        _ = leader.session(on: network, connection: 0)
        let beta = try followerSession(nodes[1], of: leader, on: network, connection: 0)
        #expect(network.wait { beta.isFollowing })
        let forwarded = await withTaskGroup(of: (LSN, [UInt8])?.self) { group in
            for i in 0..<20 { group.addTask { (try? await beta.forward(record(5, i))).map { ($0, record(5, i)) } } }
            return await group.reduce(into: [(LSN, [UInt8])]()) { if let pair = $1 { $0.append(pair) } }
        }
        #expect(forwarded.count == 20)
        #expect(Set(forwarded.map(\.0)).count == 20)
        for (lsn, bytes) in forwarded {
            #expect(try leader.log.read(lsn) == bytes)
            #expect(lsn <= leader.log.committedLSN)
            #expect(lsn <= beta.log.durableLSN, "committed only once the follower holds it too")
        }

        // A leader whose in-sync set is too small refuses before writing.
        let lonely = try TestLeader(node: nodes[2], epoch: 1, inSync: [])
        _ = lonely.session(on: network, connection: 1)
        let gammaDirectory = Node(name: "delta", directory: dir.sub("delta"))
        let delta = try followerSession(gammaDirectory, of: lonely, on: network, connection: 1)
        #expect(network.wait { delta.isFollowing })
        do {
            _ = try await delta.forward(record(6, 0))
            Issue.record("a leader alone took a forwarded write")
        } catch {
            #expect(error.code == .notEnoughReplicas)
        }
        #expect(lonely.log.durableLSN == .none, "nothing written")

        // Written on a leader that waits for a follower that never comes: the connection ends first.
        try lonely.log.close()
        try delta.log.close()
        network.cut(1)
        let waiting = try TestLeader(node: Node(name: "epsilon", directory: dir.sub("epsilon")), epoch: 1,
                                     inSync: [nodes[1].identity, nodes[2].identity])
        _ = waiting.session(on: network, connection: 2)
        let zeta = try followerSession(Node(name: "zeta", directory: dir.sub("zeta")), of: waiting, on: network, connection: 2)
        #expect(network.wait { zeta.isFollowing })
        let pending = Task { () -> WALError.Code? in
            do throws(WALError) { _ = try await zeta.forward(record(7, 0)); return nil } catch { return error.code }
        }
        #expect(network.wait { waiting.log.durableLSN == LSN(1) }, "the leader wrote it")
        zeta.connectionClosed()
        #expect(await pending.value == WALError.Code.indeterminate)
        do {
            _ = try await zeta.forward(record(7, 1))
            Issue.record("a closed session sent a write")
        } catch {
            #expect(error.code == .notLeader)
        }
        for log in [leader.log, beta.log, zeta.log] { try log.close() }
        try? waiting.log.close()
    }
}
