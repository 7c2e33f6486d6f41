import Foundation
import WALSimulation

/// The faults the campaign injects, one at a time, each healed before the next.
enum Fault: String, CaseIterable, Codable {
    /// kill -9 of the leader; restarted once another member leads.
    case killLeader
    /// SIGSTOP of the leader past its lease; SIGCONT once another member leads: the zombie must not get
    /// anything confirmed, and must rejoin as a follower (cutting its uncommitted tail).
    case pauseLeader
    /// kill -9 of the leader, restarted, and killed again while it rejoins (its tail cut by epoch), then
    /// restarted.
    case killLeaderWhileRejoining
    /// kill -9 of a follower, restarted.
    case killFollower
    /// SIGSTOP of a follower past the in-sync lag time, SIGCONT after: connected but silent, it would hold every
    /// confirm back for as long as it stayed in the in-sync set; the leader removes it once it has made no
    /// progress for the lag time, and a publish sent after that is confirmed while it is still paused.
    case pauseFollower
    /// kill -9 of a follower, its directory removed (a lost disk), restarted: a new incarnation that
    /// catches up before it counts as in sync.
    case wipeFollower
    /// kill -9 of etcd past a lease, then restarted on the same data: no confirms while it is away.
    case crashEtcd
    /// The leader cut off from etcd but not from its followers: it cannot renew, steps down before its lease
    /// ends, and an in-sync follower takes over; healed once it has.
    case cutLeaderFromEtcd
    /// The leader cut off from its followers but not from etcd, past the in-sync lag time: it keeps its lease
    /// but commits nothing (no follower acknowledges); healed, the followers catch up and rejoin.
    case cutLeaderFromFollowers

    /// Whether it takes the leader away (a failover follows).
    var hitsLeader: Bool {
        self == .killLeader || self == .pauseLeader || self == .killLeaderWhileRejoining || self == .cutLeaderFromEtcd
    }
}

/// What one injected fault did: the leader before, the leader after, and how long writes were unavailable.
struct FaultRecord: Codable {
    var fault: Fault
    var leaderBefore: String
    var epochBefore: UInt64
    var leaderAfter: String?
    var epochAfter: UInt64?
    /// From the fault to another member leading (for faults that hit the leader).
    var electionMilliseconds: Double?
    /// The longest time without a confirm from the fault until the group was writable after it (a confirm of
    /// a publish sent once the fault was over): for the faults that hit the leader, detection, election and
    /// the new leader's first commit.
    var unavailableMilliseconds: Double?
    /// From the fault to the group healthy again (every member up and following one leader).
    var healedMilliseconds: Double?
}

/// Injects faults into the cluster, with choices drawn from a seeded generator (the run's timing is not
/// seeded: processes and the disk decide it; the seed fixes which faults, on whom, with which pauses).
struct Nemesis {
    let cluster: Cluster
    let history: History
    let leaseTTL: Duration
    var random: SplitMix64

    struct Stuck: Error, CustomStringConvertible {
        var description: String
    }

    mutating func inject(_ fault: Fault) async throws -> FaultRecord {
        guard let (leader, epoch) = await waitForAgreement(within: .seconds(60)) else {
            throw Stuck(description: "no agreed leader before \(fault): \(await cluster.describeStatuses())")
        }
        var record = FaultRecord(fault: fault, leaderBefore: leader, epochBefore: epoch)
        let followers = await cluster.names.filter { $0 != leader }
        let follower = followers[Int.random(in: 0..<followers.count, using: &random)]
        let start = ContinuousClock.now
        func elected() async throws {
            guard let next = await cluster.waitForLeader(above: epoch, within: leaseTTL * 10 + .seconds(20)) else {
                throw Stuck(description: "no new leader after \(fault) of \(leader) (epoch \(epoch))")
            }
            record.leaderAfter = next.name
            record.epochAfter = next.epoch
            record.electionMilliseconds = Self.milliseconds(ContinuousClock.now - start)
        }
        switch fault {
        case .killLeader:
            await cluster.kill(leader)
            try await elected()
            try await pause(upToMilliseconds: 500)
            try await cluster.start(leader)
        case .pauseLeader:
            await cluster.pause(leader)
            try await elected()
            try await pause(upToMilliseconds: 500)
            await cluster.resume(leader)
        case .killLeaderWhileRejoining:
            await cluster.kill(leader)
            try await elected()
            try await cluster.start(leader)
            try await pause(upToMilliseconds: 400)
            await cluster.kill(leader)
            try await cluster.start(leader)
        case .killFollower:
            await cluster.kill(follower)
            try await pause(upToMilliseconds: 800)
            try await cluster.start(follower)
        case .pauseFollower:
            await cluster.pause(follower)
            let paused = ContinuousClock.now
            let deadline = paused + leaseTTL + .seconds(10)
            while history.firstConfirm(sentAfter: paused + leaseTTL) == nil {
                guard ContinuousClock.now < deadline else {
                    await cluster.resume(follower)
                    throw Stuck(description: "no publish confirmed while \(follower) was paused (10 s past the "
                                + "in-sync lag time): the in-sync set kept waiting for it")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            await cluster.resume(follower)
        case .wipeFollower:
            await cluster.kill(follower)
            try await cluster.wipe(follower)
            try await cluster.start(follower)
        case .crashEtcd:
            await cluster.etcd.crash()
            try await Task.sleep(for: leaseTTL + .milliseconds(Int.random(in: 0..<1000, using: &random)))
            try await cluster.etcd.restart()
        case .cutLeaderFromEtcd:
            await cluster.cutFromEtcd(leader)
            try await elected()
            try await pause(upToMilliseconds: 500)
            await cluster.healLinks()
        case .cutLeaderFromFollowers:
            await cluster.cutFromPeers(leader)
            try await Task.sleep(for: leaseTTL + .milliseconds(Int.random(in: 0..<1000, using: &random)))
            await cluster.healLinks()
        }
        try await cluster.startAll()
        let healing = ContinuousClock.now
        guard let healed = await waitForAgreement(within: .seconds(60)) else {
            throw Stuck(description: "the group did not settle after \(fault): \(await cluster.describeStatuses())")
        }
        if record.leaderAfter == nil, healed.epoch != epoch {
            record.leaderAfter = healed.name
            record.epochAfter = healed.epoch
        }
        // Healthy means writable too: wait for a confirm of a publish sent once the fault was over.
        let deadline = ContinuousClock.now + .seconds(60)
        while history.firstConfirm(sentAfter: healing) == nil {
            guard ContinuousClock.now < deadline else {
                throw Stuck(description: "no publish confirmed within 60 s of the group settling after \(fault)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if let writable = history.firstConfirm(sentAfter: healing) {
            record.unavailableMilliseconds = Self.milliseconds(history.longestGapWithoutConfirms(from: start, to: writable))
        }
        record.healedMilliseconds = Self.milliseconds(ContinuousClock.now - start)
        return record
    }

    /// Every member running and answering, one of them leading and the others following it.
    func waitForAgreement(within limit: Duration) async -> (name: String, epoch: UInt64)? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let leader = await cluster.agreedLeader() { return leader }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return nil
    }

    private mutating func pause(upToMilliseconds limit: Int) async throws {
        try await Task.sleep(for: .milliseconds(Int.random(in: 0..<limit, using: &random)))
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}
