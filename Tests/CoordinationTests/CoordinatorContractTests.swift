import Coordination
import EtcdTestSupport
import Testing

/// The `Coordinator` contract, each test run against the in-memory coordinator and a private etcd: what the
/// replication protocol relies on (one leader at a time, state changed only by the writer that read it, leases
/// that end, changes seen in order, an unreachable store reported as such).
@Suite(.sharedEtcd)
struct CoordinatorContractTests {
    @Test(arguments: Backend.allCases)
    func bootstrapClaimWithNoStateWinsAndWritesEpochOne(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            #expect(lease.ttl == .seconds(30))
            let before = try await node.read()
            #expect(before.state == nil && before.stateRevision == nil && before.holder == nil)

            let revision = try expectWon(try await node.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
            let after = try await node.read()
            #expect(after.state == bootstrap(alpha))
            #expect(after.state?.epoch == 1)
            #expect(after.stateRevision == revision)
            #expect(after.holder == LeaderHolder(identity: alpha, lease: lease.id, since: revision))
            #expect(after.revision >= revision)
        }
    }

    @Test(arguments: Backend.allCases)
    func aSecondClaimantLosesAndSeesTheHolder(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let a = try h.node(), b = try h.node()
            let leaseA = try await a.grantLease(ttl: .seconds(30))
            let leaseB = try await b.grantLease(ttl: .seconds(30))
            let won = try expectWon(try await a.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: leaseA.id, expecting: nil))

            // Bravo read the state after alpha's claim and still loses: the leader key exists.
            let outcome = try await b.claimLeadership(
                state: takeover(bootstrap(alpha), by: bravo), holder: bravo, lease: leaseB.id, expecting: won)
            guard case .lost(let seen) = outcome else { Issue.record("bravo won: \(outcome)"); return }
            #expect(seen.holder?.identity == alpha)
            #expect(seen.holder?.lease == leaseA.id)
            #expect(seen.state == bootstrap(alpha))
            #expect(seen.stateRevision == won)

            // A bootstrap claim (expecting no state) loses too, on the state's revision alone.
            let late = try await b.claimLeadership(state: bootstrap(bravo), holder: bravo, lease: leaseB.id, expecting: nil)
            guard case .lost = late else { Issue.record("a second bootstrap won: \(late)"); return }
            #expect(try await a.read().state == bootstrap(alpha))
        }
    }

    @Test(arguments: Backend.allCases)
    func anUpdateWithAStaleRevisionConflicts(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            let claimed = try expectWon(try await node.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
            var grown = bootstrap(alpha)
            grown.inSync.append(bravo)
            guard case .applied(let applied) = try await node.updateState(grown, lease: lease.id, expecting: claimed) else {
                Issue.record("the first update conflicted"); return
            }
            #expect(applied > claimed)

            // The same writer, still expecting the revision it claimed at: the state moved since, so no.
            var shrunk = grown
            shrunk.inSync = [alpha]
            let outcome = try await node.updateState(shrunk, lease: lease.id, expecting: claimed)
            guard case .conflict(let seen) = outcome else { Issue.record("a stale update applied: \(outcome)"); return }
            #expect(seen.state == grown)
            #expect(seen.stateRevision == applied)
            #expect(try await node.read().state == grown)
        }
    }

    @Test(arguments: Backend.allCases)
    func anUpdateUnderALeaseThatDoesNotHoldTheLeaderKeyConflicts(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let a = try h.node(), b = try h.node()
            let leaseA = try await a.grantLease(ttl: .seconds(30))
            let leaseB = try await b.grantLease(ttl: .seconds(30))
            let claimed = try expectWon(try await a.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: leaseA.id, expecting: nil))

            // Bravo has read the latest revision, but its lease does not hold the leader key.
            var grown = bootstrap(alpha)
            grown.inSync.append(bravo)
            let outcome = try await b.updateState(grown, lease: leaseB.id, expecting: claimed)
            guard case .conflict(let seen) = outcome else { Issue.record("a non-leader's update applied"); return }
            #expect(seen.holder?.lease == leaseA.id)
            #expect(seen.stateRevision == claimed)
            #expect(try await a.read().state == bootstrap(alpha))
        }
    }

    @Test(arguments: Backend.allCases)
    func resignFreesLeadershipAndANewClaimWins(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let a = try h.node(), b = try h.node()
            let leaseA = try await a.grantLease(ttl: .seconds(30))
            let leaseB = try await b.grantLease(ttl: .seconds(30))
            let first = try expectWon(try await a.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: leaseA.id, expecting: nil))
            #expect(try await b.resign(lease: leaseB.id) == false)  // bravo holds nothing to resign
            #expect(try await a.resign(lease: leaseA.id))
            #expect(try await a.resign(lease: leaseA.id) == false)

            let seen = try await b.read()
            #expect(seen.holder == nil)
            #expect(seen.stateRevision == first)  // resigning leaves the state as it was
            // Nobody leads, but a claim that expects a state other than the one there loses on the compare.
            let stale = try await b.claimLeadership(state: bootstrap(bravo), holder: bravo, lease: leaseB.id, expecting: nil)
            guard case .lost = stale else { Issue.record("a claim with a stale revision won: \(stale)"); return }
            let second = try expectWon(try await b.claimLeadership(
                state: takeover(bootstrap(alpha), by: bravo), holder: bravo, lease: leaseB.id,
                expecting: seen.stateRevision))
            let now = try await a.read()
            #expect(now.holder == LeaderHolder(identity: bravo, lease: leaseB.id, since: second))
            #expect(now.state?.epoch == 2)
        }
    }

    @Test(arguments: Backend.allCases)
    func afterTheLeadersLeaseExpiresAnotherMemberCanClaim(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let a = try h.node(), b = try h.node()
            let leaseB = try await b.grantLease(ttl: .seconds(60))
            // The shortest lease etcd grants (2 s), never renewed. On a loaded machine etcd's real clock can end it
            // before the claim arrives (the claim then throws .leaseNotFound and writes nothing): grant another and
            // claim again, a bounded number of times.
            var granted: Lease?
            for _ in 1...5 where granted == nil {
                let lease = try await a.grantLease(ttl: .seconds(2))
                #expect(lease.ttl == .seconds(2))
                do {
                    _ = try expectWon(try await a.claimLeadership(
                        state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
                    granted = lease
                } catch let error as CoordinationError where error.code == .leaseNotFound && backend == .etcd {
                    continue
                }
            }
            let leaseA = try #require(granted)

            try await h.waitForExpiry(of: leaseA, seenBy: b)
            let seen = try await b.read()
            #expect(seen.holder == nil)
            _ = try expectWon(try await b.claimLeadership(
                state: takeover(bootstrap(alpha), by: bravo), holder: bravo, lease: leaseB.id,
                expecting: seen.stateRevision))
            #expect(try await a.renew(leaseA.id) == nil)

            // The old leader's fenced write, with the revision it last saw, fails on the compare.
            let stale = try await a.updateState(bootstrap(alpha), lease: leaseA.id, expecting: try #require(seen.stateRevision))
            guard case .conflict = stale else { Issue.record("the expired leader's write applied"); return }
        }
    }

    @Test(arguments: Backend.allCases)
    func renewReturnsNilForARevokedLease(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            #expect(try await node.renew(lease.id) == .seconds(30))
            try await node.revoke(lease.id)
            #expect(try await node.renew(lease.id) == nil)
            #expect(await errorCode { () async throws(CoordinationError) in try await node.revoke(lease.id) } == .leaseNotFound)
        }
    }

    @Test(arguments: Backend.allCases)
    func revokingTheLeadersLeaseDeletesTheLeaderKey(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            _ = try expectWon(try await node.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
            try await node.revoke(lease.id)
            #expect(try await node.read().holder == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func aClaimWithARevokedLeaseThrowsLeaseNotFound(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            try await node.revoke(lease.id)
            let code = await errorCode { () async throws(CoordinationError) in
                _ = try await node.claimLeadership(state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil)
            }
            #expect(code == .leaseNotFound)
            #expect(try await node.read().state == nil)  // nothing of the transaction was applied
        }
    }

    @Test(arguments: Backend.allCases)
    func aStateThatBreaksAnInvariantIsRefusedBeforeItIsSent(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let node = try h.node()
            let lease = try await node.grantLease(ttl: .seconds(30))
            let outOfSyncLeader = GroupState(epoch: 1, leader: alpha, inSync: [bravo])
            let notTheHolder = bootstrap(bravo)
            for (state, holder) in [(outOfSyncLeader, alpha), (notTheHolder, alpha)] {
                let code = await errorCode { () async throws(CoordinationError) in
                    _ = try await node.claimLeadership(state: state, holder: holder, lease: lease.id, expecting: nil)
                }
                #expect(code == .invalidArgument)
            }
            #expect(try await node.read().state == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func aWatchSeesEachChangeInOrder(_ backend: Backend) async throws {
        try await withHarness(backend) { h in
            let a = try h.node(), b = try h.node()
            let start = try await b.read()
            let watch = try await b.watch(after: start.revision)
            let leaseA = try await a.grantLease(ttl: .seconds(30))
            let leaseB = try await b.grantLease(ttl: .seconds(30))

            let claimed = try expectWon(try await a.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: leaseA.id, expecting: nil))
            var grown = bootstrap(alpha)
            grown.inSync.append(bravo)
            guard case .applied(let grew) = try await a.updateState(grown, lease: leaseA.id, expecting: claimed) else {
                Issue.record("the update conflicted"); return
            }
            #expect(try await a.resign(lease: leaseA.id))
            let taken = try expectWon(try await b.claimLeadership(
                state: takeover(grown, by: bravo), holder: bravo, lease: leaseB.id, expecting: grew))

            var seen: [GroupSnapshot] = []
            for try await snapshot in watch {
                seen.append(snapshot)
                if seen.count == 4 { break }
            }
            #expect(seen.map(\.revision) == seen.map(\.revision).sorted())
            #expect(seen.count == 4)
            guard seen.count == 4 else { return }
            // The claim: both keys in one revision, one snapshot.
            #expect(seen[0].revision == claimed && seen[0].state == bootstrap(alpha) && seen[0].holder?.identity == alpha)
            #expect(seen[1].revision == grew && seen[1].state == grown && seen[1].holder?.identity == alpha)
            #expect(seen[2].holder == nil && seen[2].state == grown)
            #expect(seen[3].revision == taken && seen[3].holder?.identity == bravo && seen[3].state?.epoch == 2)

            // A watch from an old revision replays the same history.
            var replayed: [GroupSnapshot] = []
            for try await snapshot in try await a.watch(after: start.revision) {
                replayed.append(snapshot)
                if replayed.count == 4 { break }
            }
            #expect(replayed == seen)
        }
    }

    @Test func shutdownEndsEveryWatchAndEveryLaterCallWithShutDown() async throws {
        let etcd = try SharedEtcd.require()
        let coordinator = try EtcdCoordinator(endpoints: [etcd.endpoint], groupPrefix: "/shutdown-\(UInt32.random(in: 0...UInt32.max))/")
        let watch: CoordinationWatch
        do {
            watch = try await coordinator.watch(after: try await coordinator.read().revision)
        } catch {
            try? await coordinator.shutdown()
            throw error
        }
        try await coordinator.shutdown()
        #expect(await errorCode { () async throws(CoordinationError) in for try await _ in watch {} } == .shutDown)
        #expect(await errorCode { () async throws(CoordinationError) in _ = try await coordinator.read() } == .shutDown)
        #expect(await errorCode { () async throws(CoordinationError) in try await coordinator.shutdown() } == .shutDown)
    }

    @Test(arguments: Backend.allCases)
    func anUnreachableCoordinatorThrowsUnavailable(_ backend: Backend) async throws {
        switch backend {
        case .inMemory:
            let coordinator = InMemoryCoordinator(clock: ManualClock())
            let lease = try await coordinator.grantLease(ttl: .seconds(10))
            coordinator.setAvailable(false)
            #expect(await errorCode { () async throws(CoordinationError) in _ = try await coordinator.read() } == .unavailable)
            #expect(await errorCode { () async throws(CoordinationError) in _ = try await coordinator.renew(lease.id) } == .unavailable)
            coordinator.setAvailable(true)
            #expect(try await coordinator.renew(lease.id) == .seconds(10))
        case .etcd:
            // A loopback port nobody listens on: connection refused.
            let port = try await PrivateEtcd.freeLoopbackPort()
            let coordinator = try EtcdCoordinator(endpoints: ["http://127.0.0.1:\(port)"], groupPrefix: "/nobody/")
            #expect(await errorCode { () async throws(CoordinationError) in _ = try await coordinator.read() } == .unavailable)
            #expect(await errorCode { () async throws(CoordinationError) in
                _ = try await coordinator.grantLease(ttl: .seconds(10))
            } == .unavailable)
            try await coordinator.shutdown()
        }
    }
}
