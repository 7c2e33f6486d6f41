import Coordination
import DurableLog
import LogFormat
import Synchronization

/// The leader's view of its in-sync replicas: what each has acknowledged as durable, and the commit point that
/// gives its log (`replicasDurable(through:)`): the lowest acknowledgement over the in-sync set, and only while
/// the set, with the leader, has at least `minInsyncReplicas` members (never commit on fewer: KIP-966).
///
/// The set itself is the coordinator's; this class holds a superset of it, so that every member of the
/// coordinator's set (every replica that may be elected) has acknowledged everything committed: a follower
/// joins here first (`join`: from then on the commit point waits for it) and then in the coordinator, and
/// leaves the coordinator's set first and then this one (`remove`, after the fenced transaction).
///
/// It also tells which in-sync followers have stalled (`stalled`): a follower that is connected but acknowledges
/// nothing (a paused process, a disk whose syncs hang) holds every confirm back for as long as it stays in the
/// set, so the leader removes one that has made no progress toward its log's end for the lag time. Progress,
/// not being caught up (Kafka's `replica.lag.time.max.ms` asks for caught up): a follower that moves, however
/// far behind a burst on a shared disk, stays, so that load alone never shrinks the set below
/// `minInsyncReplicas` and turns slow confirms into refusals.
package final class InSyncTracker: Sendable {
    private struct State {
        var inSync: Set<ReplicaIdentity>
        var acknowledged: [ReplicaIdentity: LSN] = [:]
        /// The highest commit point given to the log so far (it never goes back).
        var given = LSN.none
        /// Each in-sync follower's acknowledgement when the leader last saw it move or reach the leader's end,
        /// and when that was (set at the first look after it entered the set: it is given the lag time from then).
        var progress: [ReplicaIdentity: (acknowledged: LSN, at: ContinuousClock.Instant)] = [:]
        /// In-sync followers whose log, at the start of a session, ended before what they had acknowledged.
        var lostAcknowledged: Set<ReplicaIdentity> = []
        /// Each follower's latest session: acknowledgements of an earlier one, arriving late, are not counted.
        var session: [ReplicaIdentity: ObjectIdentifier] = [:]
    }

    private let log: WriteAheadLog
    package let minInsyncReplicas: Int
    private let joinFloor: LSN
    private let state: Mutex<State>

    /// - Parameters:
    ///   - inSync: the in-sync followers (the leader not among them).
    ///   - joinFloor: a follower joins the set only once it holds every record before this LSN: the leader's
    ///     log end when it was elected, since any of those records may have been committed under an earlier
    ///     epoch without this leader knowing (its own commit point starts from nothing).
    package init(log: WriteAheadLog, inSync: Set<ReplicaIdentity>, minInsyncReplicas: Int, joinFloor: LSN = .first) {
        self.log = log
        self.minInsyncReplicas = minInsyncReplicas
        self.joinFloor = joinFloor
        state = Mutex(State(inSync: inSync))
    }

    /// The in-sync followers.
    package var inSync: Set<ReplicaIdentity> { state.withLock { $0.inSync } }

    /// Whether the in-sync set is large enough to commit anything: writes should be refused before they are
    /// appended when it is not (`notEnoughReplicas`).
    package var canCommit: Bool { state.withLock { $0.inSync.count + 1 >= minInsyncReplicas && !$0.inSync.isEmpty } }

    /// The LSN after the last record `replica` acknowledged as durable (`.first` when it acknowledged nothing).
    package func acknowledged(by replica: ReplicaIdentity) -> LSN { state.withLock { $0.acknowledged[replica] ?? .first } }

    /// `replica` has made every record before `end` durable, as its session `session` says (nil: unchecked).
    /// A report from a session other than its latest (`sessionStarts`) is ignored: that session's log may no
    /// longer be what the follower holds.
    package func report(_ replica: ReplicaIdentity, durableBefore end: LSN, session: ObjectIdentifier? = nil) {
        let point: LSN? = state.withLock { s in
            if let session, s.session[replica] != session { return nil }
            s.acknowledged[replica] = max(s.acknowledged[replica] ?? .first, end)
            return commitPoint(&s)
        }
        if let point { log.replicasDurable(through: point) }
    }

    /// `replica` begins session `session` with its log ending at `end` (its `follow`); from now on only that
    /// session's reports count. An end below what it acknowledged before means its disk lost records it
    /// reported durable (a disk that drops synced writes: its incarnation is the same, so nothing else would
    /// notice): it no longer holds what the commit point may have covered. Its acknowledgement is lowered to
    /// what it holds, so the commit point waits for it again, and an in-sync one is given to `stalled` at once,
    /// to leave the set; it can join again once it has caught up. Returns false in that case (say so loudly).
    package func sessionStarts(_ replica: ReplicaIdentity, logEnd end: LSN, session: ObjectIdentifier) -> Bool {
        let lost: (Bool, LSN?) = state.withLock { s in
            s.session[replica] = session
            #if !REPLICATION_BROKEN_KEEPS_LOST_ACKNOWLEDGEMENTS
            // (BROKEN ON PURPOSE when set, harness check builds only: the higher acknowledgement is kept.)
            if let before = s.acknowledged[replica], end < before {
                s.acknowledged[replica] = end
                if s.inSync.contains(replica) { s.lostAcknowledged.insert(replica) }
                return (true, nil)
            }
            #endif
            s.acknowledged[replica] = max(s.acknowledged[replica] ?? .first, end)
            return (false, commitPoint(&s))
        }
        if let point = lost.1 { log.replicasDurable(through: point) }
        return !lost.0
    }

    /// Removes `replica` from the in-sync set (after the coordinator's transaction that removed it succeeded):
    /// the commit point may then advance past what it lacks.
    package func remove(_ replica: ReplicaIdentity) {
        let point: LSN? = state.withLock { s in
            s.inSync.remove(replica)
            s.progress[replica] = nil
            s.lostAcknowledged.remove(replica)
            return commitPoint(&s)
        }
        if let point { log.replicasDurable(through: point) }
    }

    /// Whether `replica` may join the in-sync set now: it holds every record the commit point has covered so
    /// far, and every record the leader held when elected. A member that joined with less could be elected
    /// without records that were confirmed.
    package func mayJoin(_ replica: ReplicaIdentity) -> Bool {
        state.withLock { s in Self.mayJoin(replica, s, joinFloor: joinFloor) }
    }

    private static func mayJoin(_ replica: ReplicaIdentity, _ s: State, joinFloor: LSN) -> Bool {
        guard let acknowledged = s.acknowledged[replica] else { return false }
        return acknowledged > s.given && acknowledged >= joinFloor
    }

    /// Adds `replica` to the in-sync set if it may join (`mayJoin`, checked under the same lock, so that no
    /// commit slips past it in between); false when it may not. Call it before the coordinator's transaction
    /// that adds it, and `remove` it again when that transaction is not applied: a commit between the
    /// transaction and this call could otherwise cover records the new member lacks.
    package func join(_ replica: ReplicaIdentity) -> Bool {
        // With the set large enough again, what every member already acknowledged commits now: no further
        // acknowledgement may come (a follower that has caught up waits for new records).
        let joined: (Bool, LSN?) = state.withLock { s in
            guard Self.mayJoin(replica, s, joinFloor: joinFloor) else { return (false, nil) }
            s.inSync.insert(replica)
            return (true, commitPoint(&s))
        }
        if let point = joined.1 { log.replicasDurable(through: point) }
        return joined.0
    }

    /// Looks at each in-sync follower's progress: at `now` the leader's log ends at `end` (the LSN after its
    /// last accepted record). A follower whose acknowledgement moved since the last look, or reaches `end`,
    /// made progress now; one still behind at the same acknowledgement did not. Call it every tick.
    package func noteLeaderEnd(_ end: LSN, at now: ContinuousClock.Instant) {
        state.withLock { s in
            for member in s.inSync {
                let acknowledged = s.acknowledged[member] ?? .first
                #if !REPLICATION_BROKEN_NO_STALL_CHECK
                // (BROKEN ON PURPOSE when set, harness check builds only: every member counts as moving.)
                if let last = s.progress[member], last.acknowledged == acknowledged, acknowledged < end { continue }
                #endif
                s.progress[member] = (acknowledged, now)
            }
        }
    }

    /// The in-sync followers that have made no progress toward the leader's end for `lagTime` or longer as of
    /// `now` (see `noteLeaderEnd`), and those that lost records they had acknowledged (`sessionStarts`).
    package func stalled(for lagTime: Duration, at now: ContinuousClock.Instant) -> Set<ReplicaIdentity> {
        state.withLock { s in
            s.inSync.filter { member in
                s.lostAcknowledged.contains(member) || s.progress[member].map { now - $0.at >= lagTime } ?? false
            }
        }
    }

    /// The new commit point, when the in-sync set allows one and it moved. Lock held.
    private func commitPoint(_ s: inout State) -> LSN? {
        guard s.inSync.count + 1 >= minInsyncReplicas, !s.inSync.isEmpty else { return nil }
        #if REPLICATION_BROKEN_COMMITS_ON_A_QUORUM  // BROKEN ON PURPOSE (harness check builds only)
        // Raft's rule over the in-sync set: the leader and the best minInsyncReplicas - 1 followers.
        let acknowledgements = s.inSync.map { s.acknowledged[$0] ?? .first }.sorted(by: >)
        let lowest = acknowledgements[min(acknowledgements.count, max(1, minInsyncReplicas - 1)) - 1]
        #else
        let lowest = s.inSync.map { s.acknowledged[$0] ?? .first }.min()!
        #endif
        let point = lowest.previous
        guard point > s.given else { return nil }
        s.given = point
        return point
    }
}
