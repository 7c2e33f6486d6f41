import Coordination
import LogFormat
import Testing
@testable import Replication

@Suite struct ElectionRuleTests {
    let alpha = ReplicaIdentity(member: "alpha", incarnation: 1)
    let beta = ReplicaIdentity(member: "beta", incarnation: 2)
    let gamma = ReplicaIdentity(member: "gamma", incarnation: 3)
    let log = LogIdentity(high: 0x1234, low: 0x5678)

    func snapshot(_ state: GroupState?, holder: ReplicaIdentity?, revision: Int64 = 10) -> GroupSnapshot {
        GroupSnapshot(state: state, stateRevision: state.map { _ in Revision(rawValue: revision) },
                      holder: holder.map { LeaderHolder(identity: $0, lease: LeaseID(rawValue: 7), since: Revision(rawValue: revision)) },
                      revision: Revision(rawValue: revision))
    }

    @Test func theFirstReplicaFoundsTheGroupAloneInSyncWithItsLogIdentity() {
        let step = ElectionRule.step(snapshot(nil, holder: nil), me: alpha, log: log)
        #expect(step == .claim(GroupState(epoch: 1, leader: alpha, inSync: [alpha], members: [alpha], log: log.description),
                               expecting: nil))
        #expect(LogIdentity(log.description) == log)
    }

    @Test func aLiveLeaderIsFollowedUnderItsEpochAndOnesOwnOldKeyIsWaitedOut() {
        let state = GroupState(epoch: 4, leader: beta, inSync: [alpha, beta], members: [alpha, beta], log: log.description)
        #expect(ElectionRule.step(snapshot(state, holder: beta), me: alpha, log: log) == .follow(beta, epoch: 4))
        #expect(ElectionRule.step(snapshot(state, holder: alpha), me: alpha, log: log) == .wait)
    }

    @Test func onlyAnInSyncReplicaClaimsAndItRaisesTheEpochExpectingTheStateItRead() {
        let state = GroupState(epoch: 4, leader: beta, inSync: [beta, alpha], members: [alpha, beta, gamma],
                               log: log.description)
        var raised = state
        raised.epoch = 5
        raised.leader = alpha
        #expect(ElectionRule.step(snapshot(state, holder: nil, revision: 33), me: alpha, log: log)
                == .claim(raised, expecting: Revision(rawValue: 33)))
        #expect(ElectionRule.step(snapshot(state, holder: nil), me: gamma, log: log) == .wait,
                "gamma is not in sync: it may lack committed records")
    }
}
