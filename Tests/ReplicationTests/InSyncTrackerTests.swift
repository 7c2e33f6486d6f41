import Coordination
import DurableLog
import LogFormat
import Testing
import WALSimulation
@testable import Replication

/// The commit point a leader's tracker gives its log, observed through the log's committed watermark.
@Suite(.serialized) struct InSyncTrackerTests {
    let beta = ReplicaIdentity(member: "beta", incarnation: 1)
    let gamma = ReplicaIdentity(member: "gamma", incarnation: 2)

    /// A replicated log holding `records` durable records, none confirmed.
    func leaderLog(_ dir: TemporaryDirectory, records: Int) async throws -> WriteAheadLog {
        var options = testOptions
        options.confirmsWaitForReplicas = true
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        for i in 0..<records {
            try record(9, i).withUnsafeBytes { bytes in try log.append(bytes) { _ in } }
        }
        log.waitUntilAcceptedIsDurable()
        return log
    }

    @Test func theCommitPointIsTheLowestAcknowledgementOfTheInSyncSetAndNeverGoesBack() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta, gamma], minInsyncReplicas: 2)
        tracker.report(beta, durableBefore: LSN(8))
        #expect(log.committedLSN == .none, "gamma acknowledged nothing yet")
        tracker.report(gamma, durableBefore: LSN(5))
        #expect(log.committedLSN == LSN(4))
        tracker.report(gamma, durableBefore: LSN(11))
        #expect(log.committedLSN == LSN(7))
        tracker.report(beta, durableBefore: LSN(3))  // late, lower: changes nothing
        #expect(log.committedLSN == LSN(7))
        try log.close()
    }

    @Test func belowMinInsyncReplicasNothingCommitsAndAMemberAddedBackCommitsWhatItHoldsAtOnce() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta, gamma], minInsyncReplicas: 2)
        tracker.report(beta, durableBefore: LSN(6))
        tracker.remove(gamma)
        #expect(log.committedLSN == LSN(5), "beta and the leader are still two")
        tracker.remove(beta)
        tracker.report(beta, durableBefore: LSN(11))
        #expect(log.committedLSN == LSN(5), "the leader alone commits nothing")
        #expect(!tracker.canCommit)
        #expect(tracker.join(beta))
        #expect(log.committedLSN == LSN(10), "beta's acknowledgement counts as soon as it is back, without another")
        try log.close()
    }

    @Test func aFollowerJoinsOnlyHoldingEverythingCommittedAndEverythingTheLeaderHadWhenElected() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta], minInsyncReplicas: 2, joinFloor: LSN(8))
        #expect(!tracker.mayJoin(gamma), "nothing acknowledged yet")
        tracker.report(gamma, durableBefore: LSN(7))
        #expect(!tracker.mayJoin(gamma), "behind the leader's log at election")
        tracker.report(beta, durableBefore: LSN(11))
        #expect(log.committedLSN == LSN(10))
        tracker.report(gamma, durableBefore: LSN(9))
        #expect(!tracker.mayJoin(gamma), "behind the commit point")
        #expect(!tracker.join(gamma), "join checks as mayJoin does")
        #expect(!tracker.inSync.contains(gamma))
        tracker.report(gamma, durableBefore: LSN(11))
        #expect(tracker.mayJoin(gamma))
        try log.close()
    }

    /// A joining follower counts in the commit point from `join` on, before the coordinator's set names it:
    /// a commit while that transaction is on its way waits for it too, so the coordinator's set never names a
    /// member that lacks a committed record.
    @Test func aJoiningFollowerHoldsBackTheCommitPointFromTheMomentItJoins() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta], minInsyncReplicas: 2)
        tracker.report(beta, durableBefore: LSN(6))
        tracker.report(gamma, durableBefore: LSN(6))
        #expect(log.committedLSN == LSN(5))
        #expect(tracker.join(gamma))
        tracker.report(beta, durableBefore: LSN(11))
        #expect(log.committedLSN == LSN(5), "gamma has not acknowledged 6...10")
        tracker.report(gamma, durableBefore: LSN(9))
        #expect(log.committedLSN == LSN(8))
        tracker.remove(gamma)  // its transaction was not applied
        #expect(log.committedLSN == LSN(10))
        try log.close()
    }

    /// On an injected timeline (half-second looks, a 2 s lag time): a follower that keeps acknowledging, even
    /// far behind the leader, has not stalled; one that stops acknowledging while the leader's end moves on
    /// (paused, its connection open) has stalled once 2 s passed since it last moved, not before.
    @Test func aFollowerWhoseLogLostWhatItAcknowledgedLeavesAtOnceAndHoldsTheCommitPointBack() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta, gamma], minInsyncReplicas: 2)
        let sessions = [Session(), Session(), Session()]  // kept alive: their identities stay distinct
        let (first, second, third) = (ObjectIdentifier(sessions[0]), ObjectIdentifier(sessions[1]), ObjectIdentifier(sessions[2]))
        #expect(tracker.sessionStarts(beta, logEnd: LSN(1), session: first), "a first session")
        tracker.report(beta, durableBefore: LSN(8), session: first)
        tracker.report(gamma, durableBefore: LSN(6))
        #expect(log.committedLSN == LSN(5))
        // beta reconnects with its log ending at 4: records 4 to 7, which it reported durable, are gone.
        #expect(!tracker.sessionStarts(beta, logEnd: LSN(4), session: second))
        #expect(tracker.acknowledged(by: beta) == LSN(4))
        let now = ContinuousClock.now
        tracker.noteLeaderEnd(LSN(11), at: now)
        #expect(tracker.stalled(for: .seconds(3600), at: now) == [beta], "it leaves the set without waiting the lag time")
        tracker.report(gamma, durableBefore: LSN(11))
        #expect(log.committedLSN == LSN(5), "the commit point waits for what beta holds now")
        // A late acknowledgement of its first session does not count: that log is not what it holds.
        tracker.report(beta, durableBefore: LSN(9), session: first)
        #expect(tracker.acknowledged(by: beta) == LSN(4))
        #expect(log.committedLSN == LSN(5))
        tracker.remove(beta)
        #expect(log.committedLSN == LSN(10))
        #expect(tracker.stalled(for: .seconds(3600), at: now).isEmpty)
        #expect(!tracker.mayJoin(beta))
        // Caught up again, it may join: a session that starts where its acknowledgements are is not a loss.
        tracker.report(beta, durableBefore: LSN(11), session: second)
        #expect(tracker.sessionStarts(beta, logEnd: LSN(11), session: third))
        #expect(tracker.mayJoin(beta))
        withExtendedLifetime(sessions) {}
        try log.close()
    }

    /// Stands for a leader's session with one follower (its identity tells sessions apart).
    private final class Session {}

    @Test func aFollowerThatStopsAcknowledgingStallsAfterTheLagTimeAndOneThatMovesNever() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta, gamma], minInsyncReplicas: 2)
        let start = ContinuousClock.now, lag = Duration.seconds(2)
        tracker.report(beta, durableBefore: LSN(2))
        tracker.report(gamma, durableBefore: LSN(11))
        for tick in 0...8 {
            let now = start + .milliseconds(tick * 500)
            tracker.noteLeaderEnd(LSN(11 + UInt64(tick) * 100), at: now)  // the leader runs far ahead
            tracker.report(beta, durableBefore: LSN(3 + UInt64(tick)))    // beta crawls, but moves
            let stalled = tracker.stalled(for: lag, at: now)
            #expect(!stalled.contains(beta), "tick \(tick)")
            // gamma stopped at LSN 11, which the leader passed at 500 ms: it last moved (was at the end) at 0.
            #expect(stalled.contains(gamma) == (tick * 500 >= 2000), "tick \(tick)")
        }
        tracker.report(gamma, durableBefore: LSN(12))
        tracker.noteLeaderEnd(LSN(900), at: start + .seconds(5))
        #expect(tracker.stalled(for: lag, at: start + .seconds(5)).isEmpty, "gamma moved again")
        try log.close()
    }

    /// An idle leader (its end does not move): a follower at that end has not stalled, however long the quiet
    /// lasts; a follower that joins is given the whole lag time from its first look in the set; one removed
    /// and back starts afresh.
    @Test func nobodyStallsAtAnIdleLeadersEndAndANewMemberGetsTheLagTime() async throws {
        let dir = TemporaryDirectory()
        let log = try await leaderLog(dir, records: 10)
        let tracker = InSyncTracker(log: log, inSync: [beta], minInsyncReplicas: 2)
        let start = ContinuousClock.now, lag = Duration.seconds(2)
        tracker.report(beta, durableBefore: LSN(11))
        for second in 0...10 {
            tracker.noteLeaderEnd(LSN(11), at: start + .seconds(second))
            #expect(tracker.stalled(for: lag, at: start + .seconds(second)).isEmpty)
        }
        tracker.report(gamma, durableBefore: LSN(11))
        #expect(tracker.join(gamma))
        tracker.noteLeaderEnd(LSN(21), at: start + .seconds(11))  // neither follows the leader past LSN 11 now
        #expect(tracker.stalled(for: lag, at: start + .milliseconds(12_900)) == [beta],
                "beta last moved (was at the end) at 10 s; gamma is given the lag time from 11 s")
        #expect(tracker.stalled(for: lag, at: start + .seconds(13)) == [beta, gamma])
        tracker.remove(gamma)
        #expect(tracker.join(gamma))
        tracker.noteLeaderEnd(LSN(21), at: start + .seconds(14))
        #expect(tracker.stalled(for: lag, at: start + .seconds(15)) == [beta], "gamma, back, starts afresh")
        try log.close()
    }
}
