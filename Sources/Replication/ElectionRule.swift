import Coordination
import LogFormat

/// What a replica does about the group's state as it read it: the election rule as a pure function, so that
/// its cases are tested without a coordinator.
package enum ElectionStep: Equatable, Sendable {
    /// No live leader and this replica may lead: claim with this state (epoch raised, itself the leader),
    /// expecting the state at this revision (nil: no state yet).
    case claim(GroupState, expecting: Revision?)
    /// A live leader: follow it under its epoch.
    case follow(ReplicaIdentity, epoch: UInt64)
    /// No live leader this replica may follow, and it may not lead (it is not in sync, or the leader key is
    /// its own from an earlier lease, which must lapse first): wait for the state to change.
    case wait
}

package enum ElectionRule {
    /// The step for replica `me`, whose log has identity `log`, given `snapshot`.
    package static func step(_ snapshot: GroupSnapshot, me: ReplicaIdentity, log: LogIdentity) -> ElectionStep {
        if let holder = snapshot.holder {
            guard holder.identity != me else { return .wait }
            return .follow(holder.identity, epoch: snapshot.state?.epoch ?? 0)
        }
        guard let state = snapshot.state else {
            // No group yet: the first replica to claim founds it, alone in sync; the others join the in-sync
            // set once they hold everything it committed.
            return .claim(GroupState(epoch: 1, leader: me, inSync: [me], members: [me], log: log.description),
                          expecting: nil)
        }
        var next = state
        #if REPLICATION_BROKEN_ELECTS_OUT_OF_SYNC
        // BROKEN ON PURPOSE (harness check builds only): an unclean election, the claimant written into the set.
        if !next.inSync.contains(me) { next.inSync.append(me) }
        if !next.members.isEmpty && !next.members.contains(me) { next.members.append(me) }
        #else
        guard state.inSync.contains(me) else { return .wait }
        #endif
        next.epoch += 1
        next.leader = me
        return .claim(next, expecting: snapshot.stateRevision)
    }
}
