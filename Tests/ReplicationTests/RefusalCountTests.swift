import DurableLog
import LogFormat
import Synchronization
import Testing
@testable import Replication

/// Every refusal a session makes is told to its node (which counts it, `replication_refusals_total`), once
/// per session, with its reason; refusals it receives are the other side's to count.
@Suite(.timeLimit(.minutes(2))) struct RefusalCountTests {
    private final class Seen: Sendable {
        let refusals = Mutex<[ReplicationMessage.Refusal]>([])
        let sent = Mutex<[ReplicationMessage]>([])
        func refused(_ reason: ReplicationMessage.Refusal) { refusals.withLock { $0.append(reason) } }
        func send(_ message: ReplicationMessage) { sent.withLock { $0.append(message) } }
        var sentRefusals: [ReplicationMessage.Refusal] {
            sent.withLock { $0.compactMap { if case .refuse(let reason, _) = $0 { reason } else { nil } } }
        }
    }

    /// A follower's session (not started) over the log in `node`'s directory, telling `seen` what it refuses
    /// and sends.
    private func watchedFollower(_ node: Node, of leader: TestLeader, _ seen: Seen) throws -> FollowerSession {
        var options = testOptions
        options.isReplica = true
        options.identity = leader.log.identity
        return try FollowerSession(
            log: try WriteAheadLog.open(directory: node.directory, options: options),
            configuration: .init(directory: node.directory, options: options, replica: node.identity,
                                 leaderEpoch: leader.epoch, onRefusal: seen.refused),
            send: seen.send)
    }

    private func leaderSession(_ leader: TestLeader, _ seen: Seen) -> LeaderSession {
        LeaderSession(log: leader.log, history: leader.history, epoch: leader.epoch, tracker: leader.tracker,
                      onRefusal: seen.refused, send: seen.send)
    }

    @Test func aLeaderCountsAFollowerOfAnotherLogAndOneOfANewerEpoch() async throws {
        let dir = TemporaryDirectory()
        let leader = try TestLeader(node: Node(name: "a", directory: dir.sub("a")), epoch: 3, inSync: [])
        defer { try? leader.log.close() }

        let stranger = Seen()
        let first = leaderSession(leader, stranger)
        first.receive(.hello(.init(log: LogIdentity.random(), member: "b", incarnation: 1, lastEpoch: 3, end: .first)))
        #expect(stranger.refusals.withLock { $0 } == [.otherLog])
        #expect(stranger.sentRefusals == [.otherLog])
        // The session ended: what follows is neither answered nor counted again.
        first.receive(.hello(.init(log: LogIdentity.random(), member: "b", incarnation: 1, lastEpoch: 3, end: .first)))
        #expect(stranger.refusals.withLock { $0 } == [.otherLog])

        let deposed = Seen()
        let second = leaderSession(leader, deposed)
        second.receive(.hello(.init(log: leader.log.identity, member: "c", incarnation: 1, lastEpoch: 4, end: .first)))
        #expect(deposed.refusals.withLock { $0 } == [.staleEpoch])
        #expect(deposed.sentRefusals == [.staleEpoch])

        // A refusal the follower sends is not this side's own.
        let refusedBy = Seen()
        let third = leaderSession(leader, refusedBy)
        third.receive(.refuse(.logFailed, "the follower's disk failed"))
        #expect(refusedBy.refusals.withLock { $0 }.isEmpty)
    }

    /// A rejoining follower told that its epoch ended before records it knows are committed refuses to cut them
    /// (it would mean a bug or a lost disk on the leader's side, never normal operation), keeps its log whole,
    /// and counts the refusal.
    @Test func aFollowerRefusesACutBelowWhatItKnowsIsCommitted() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let beta = Node(name: "beta", directory: dir.sub("beta"))
        let leader = try TestLeader(node: Node(name: "alpha", directory: dir.sub("alpha")), epoch: 1, inSync: [beta.identity])
        defer { try? leader.log.close() }
        _ = leader.session(on: network, connection: 0)
        let first = try followerSession(beta, of: leader, on: network, connection: 0)
        for i in 0..<40 { _ = try await leader.log.append(record(0, i)) }
        #expect(leader.log.committedLSN == LSN(40))
        network.stop()
        let end = first.log.durableLSN
        try first.log.close()

        let seen = Seen()
        let again = try watchedFollower(beta, of: leader, seen)
        defer { try? again.log.close() }
        let committed = again.committed
        #expect(committed > LSN(5), "the follower's frames vouch for records committed (\(committed))")
        again.start()
        again.receive(.epochEnd(.init(epoch: 1, end: LSN(5))))
        guard case .refused(.cutBelowCommitted, _)? = again.ending else {
            Issue.record("the session ended \(String(describing: again.ending))")
            return
        }
        #expect(seen.refusals.withLock { $0 } == [.cutBelowCommitted])
        #expect(seen.sentRefusals == [.cutBelowCommitted])
        #expect(again.log.durableLSN == end, "records were cut")
    }

    @Test func aFollowerCountsItsOwnRefusalsNotItsLeaders() async throws {
        let dir = TemporaryDirectory()
        let leader = try TestLeader(node: Node(name: "a", directory: dir.sub("a")), epoch: 2, inSync: [])
        defer { try? leader.log.close() }

        let seen = Seen()
        let session = try watchedFollower(Node(name: "b", directory: dir.sub("b")), of: leader, seen)
        defer { try? session.log.close() }
        session.start()
        // A follower's message from the leader's side breaks the protocol.
        session.receive(.hello(.init(log: leader.log.identity, member: "a", incarnation: 1, lastEpoch: 2, end: .first)))
        #expect(seen.refusals.withLock { $0 } == [.protocolViolation])
        #expect(seen.sentRefusals == [.protocolViolation])

        let other = Seen()
        let refused = try watchedFollower(Node(name: "c", directory: dir.sub("c")), of: leader, other)
        defer { try? refused.log.close() }
        refused.start()
        refused.receive(.refuse(.notLeader, "this node does not lead"))
        #expect(other.refusals.withLock { $0 }.isEmpty, "the leader's refusal was counted as the follower's")
    }
}
