import ClusterSimulation
import Foundation
import Testing
import WALSimulation

@Suite(.serialized, .timeLimit(.minutes(10))) struct ClusterTrialTests {
    /// Seeded runs of three replicas on simulated disks: appends, interleaved deliveries, broken connections,
    /// followers cut off for a while (both ways, or one way: acknowledgements or frames lost), leaders paused past
    /// their lease that wake up and take writes with a follower that has not noticed, followers' power losses (some rejoining as new replicas) and lost disks,
    /// leaders' power losses with elections. `wal-torture --cluster --seeds N` runs more.
    @Test func noConfirmedRecordIsLostAcrossFailoversPowerLossesLostDisksAndBrokenConnections() async {
        var elections = 0, powerLosses = 0, confirmed = 0, cuts = 0, rejoinsAsNew = 0, disksLost = 0, partitions = 0, oneWayCuts = 0, woken = 0, inSyncChanges = 0
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
            rejoinsAsNew += outcome.rejoinsAsNew
            disksLost += outcome.disksLost
            partitions += outcome.partitions
            oneWayCuts += outcome.oneWayCuts
            woken += outcome.deposedLeadersWoken
            inSyncChanges += outcome.inSyncChanges
        }
        print("cluster trials: \(elections) elections, \(powerLosses) power losses, \(confirmed) confirms, \(cuts) cuts, \(rejoinsAsNew) rejoins as new, \(disksLost) disks lost, "
              + "\(partitions) partitions, \(oneWayCuts) one-way cuts, \(woken) deposed leaders woken, \(inSyncChanges) in-sync set changes")
        #expect(elections > 100)
        #expect(powerLosses > 200)
        #expect(confirmed > 3_000)
        #expect(disksLost > 30)
        #expect(partitions > 30)
        #expect(oneWayCuts > 30)
        #expect(woken > 30)
        #expect(inSyncChanges > 100)
    }

    /// A seed replays its run exactly: the logs have no threads, so every write, sync, delivery and fault
    /// happens when the seed says. Two runs of each seed give the same trace, the same counts and the same
    /// bytes on every replica's disk (a failing seed that `wal-torture --cluster` prints fails again the same way).
    @Test func aSeedReplaysItsRunExactly() async {
        for seed in UInt64(1)...6 {
            let first = await ClusterTrial(seed: seed).run()
            let second = await ClusterTrial(seed: seed).run()
            #expect(first.failure == nil, "seed \(seed): \(first.failure ?? "")")
            #expect(first.trace.count > 10, "seed \(seed) traced \(first.trace.count) events")
            #expect(first.trace == second.trace, "seed \(seed): the traces differ first at event \(first.trace.indices.first { $0 >= second.trace.count || first.trace[$0] != second.trace[$0] } ?? first.trace.count)")
            #expect(first.diskFingerprints == second.diskFingerprints, "seed \(seed)")
            let counts: [Int] = [first.confirmed, first.elections, first.powerLosses, first.inSyncChanges]
            let againCounts: [Int] = [second.confirmed, second.elections, second.powerLosses, second.inSyncChanges]
            #expect(counts == againCounts, "seed \(seed)")
        }
    }

    /// The same seed in another process (`wal-torture --cluster --seed S`, whose dictionaries hash with another
    /// seed of their own) prints the fingerprint this process's run of it has: nothing the run does depends on
    /// the order a dictionary or a set happens to iterate in.
    @Test func aSeedReplaysItsRunExactlyInAnotherProcess() async throws {
        for seed in UInt64(7)...10 {
            let here = await ClusterTrial(seed: seed).run()
            let there = try ToolRun.run(ToolRun.productsDirectory + "/wal-torture", ["--cluster", "--seed", "\(seed)"])
            #expect(there.status == 0, "seed \(seed): \(there.errors)")
            let printed = there.output.split(separator: "\n").map(String.init).first { $0.hasPrefix("seed \(seed): fingerprint ") }
            let expected: String = "seed \(seed): fingerprint " + String(format: "%016llx", here.fingerprint)
            #expect(printed == expected, "seed \(seed): the other process printed \(printed ?? "no fingerprint")")
        }
    }
}
