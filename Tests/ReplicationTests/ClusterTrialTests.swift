import ClusterSimulation
import Testing

@Suite(.serialized, .timeLimit(.minutes(10))) struct ClusterTrialTests {
    /// Seeded runs of three replicas on simulated disks: appends, interleaved deliveries, broken connections,
    /// followers' power losses and lost disks, leaders' power losses with elections. `wal-torture --cluster
    /// --seeds N` runs more.
    @Test func noConfirmedRecordIsLostAcrossFailoversPowerLossesLostDisksAndBrokenConnections() async {
        var elections = 0, powerLosses = 0, confirmed = 0, cuts = 0, disksLost = 0
        for seed in UInt64(1)...50 {
            let outcome = await ClusterTrial(seed: seed).run()
            if let failure = outcome.failure {
                Issue.record("seed \(seed): \(failure)")
                return
            }
            elections += outcome.elections
            powerLosses += outcome.powerLosses
            confirmed += outcome.confirmed
            cuts += outcome.cutsOnRejoin
            disksLost += outcome.disksLost
        }
        print("cluster trials: \(elections) elections, \(powerLosses) power losses, \(confirmed) confirms, \(cuts) cuts, \(disksLost) disks lost")
        #expect(elections > 100)
        #expect(powerLosses > 200)
        #expect(confirmed > 5_000)
        #expect(disksLost > 30)
    }
}
