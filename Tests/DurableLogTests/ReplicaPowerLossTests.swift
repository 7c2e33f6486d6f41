import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import DurableLog

/// A leader whose confirms wait for one follower, the follower's disk losing power before a chosen operation:
/// every record the leader confirmed must come back from the follower's disk as the power cut left it, its
/// recovery must find no damage to confirmed records (the watermark in the leader's frames never runs ahead of
/// what the follower acknowledged), and it must then catch up and end where the leader ends.
@Suite(.serialized, .timeLimit(.minutes(10))) struct ReplicaPowerLossTests {
    struct Outcome {
        var confirmed = 0
        var failure: String?
        var tornTailCut = false
    }

    static var options: LogOptions { PowerLossTrial.defaultOptions }

    /// One trial: rounds of `perRound` appends submitted at once, each round shipped until the leader has
    /// nothing more (its confirms arrive as the follower's acknowledgements do).
    func trial(seed: UInt64, crashBefore: Int?, rounds: Int = 40, perRound: Int = 10) async -> Outcome {
        var outcome = Outcome()
        let leaderDisk = SimulatedDisk(), followerDisk = SimulatedDisk()
        var leaderOptions = Self.options
        leaderOptions.confirmsWaitForReplicas = true
        leaderOptions.leaderEpoch = 1
        guard let leader = try? WriteAheadLog.open(directory: "/sim/leader", options: leaderOptions, fileSystem: leaderDisk)
        else { return Outcome(failure: "the leader did not open") }
        if let crashBefore { followerDisk.crash(beforeOperation: crashBefore) }
        let confirmed = Mutex<[LSN: [UInt8]]>([:])
        if let follower = try? WriteAheadLog.open(directory: "/sim/follower",
                                                  options: replicaOptions(of: leader, Self.options), fileSystem: followerDisk),
           var shipper = try? InProcessShipper(leader: leader, follower: follower, epoch: 1) {
            rounds: for round in 0..<rounds {
                for i in 0..<perRound {
                    let record = PowerLossTrial.record(seed: seed, stream: round, index: i)
                    try? record.withUnsafeBytes { bytes in
                        try leader.append(bytes) { result in
                            if case .success(let lsn) = result { confirmed.withLock { $0[lsn] = record } }
                        }
                    }
                }
                do {
                    // Ship until the follower acknowledged the round's records (the leader may still be
                    // writing them: the leader's threads, not this loop, are what it waits for).
                    while shipper.acknowledged.rawValue <= UInt64((round + 1) * perRound) {
                        if try await !shipper.shipOne(maxBytes: 6 << 10) { await Task.yield() }
                    }
                } catch {
                    break rounds  // the follower's disk lost power
                }
            }
            try? follower.close()
        }
        try? leader.close()
        followerDisk.crash()
        let image = followerDisk.crashImage(seed: seed)
        let confirms = confirmed.withLock { $0 }
        outcome.confirmed = confirms.count
        do {
            let follower = try WriteAheadLog.open(directory: "/sim/follower", options: replicaOptions(of: nil, Self.options),
                                                  fileSystem: image)
            outcome.tornTailCut = follower.recoveryReport.tornTail != nil
            for (lsn, record) in confirms where (try? follower.read(lsn)) != record {
                outcome.failure = "confirmed LSN \(lsn) is missing or differs on the follower"
                try? follower.close()
                return outcome
            }
            // It catches up from where its recovered log ends.
            let leader = try WriteAheadLog.open(directory: "/sim/leader", options: leaderOptions, fileSystem: leaderDisk)
            var shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 1)
            try await shipper.shipAll(maxBytes: 6 << 10)
            if follower.durableLSN != leader.durableLSN {
                outcome.failure = "caught up to \(follower.durableLSN), the leader ends at \(leader.durableLSN)"
            }
            try follower.forEachRecord(from: .first) { lsn, bytes in
                if (try? leader.read(lsn)) != Array(bytes) { outcome.failure = "LSN \(lsn) differs after catching up" }
                return outcome.failure == nil
            }
            try follower.close()
            try leader.close()
        } catch {
            outcome.failure = "\(error)"
        }
        return outcome
    }

    @Test func everyRecordTheLeaderConfirmedSurvivesTheFollowersPowerLossAtEveryOperation() async throws {
        var checked = 0, tornTails = 0, point = 0
        while true {
            let outcome = await trial(seed: UInt64(point) &* 31 &+ 7, crashBefore: point)
            if let failure = outcome.failure {
                Issue.record("crash before the follower's operation \(point): \(failure)")
                return
            }
            checked += outcome.confirmed
            if outcome.tornTailCut { tornTails += 1 }
            if outcome.confirmed == 40 * 10 { break }  // the power lasted through the whole workload
            point += 1
        }
        // 131 to 177 crash points and 20,000 to 33,000 confirms checked when written (the leader groups each round as its threads run).
        #expect(point > 80)
        #expect(checked > 10_000)
        #expect(tornTails > 10, "the power cuts must leave torn tails on the follower")
    }
}
