import Coordination
import EtcdTestSupport
import Testing

/// A watch survives nothing: when the store goes away it ends with `.unavailable`, and the caller reads and
/// watches again.
struct WatchEndTests {
    @Test func aWatchEndsWithUnavailableWhenTheInMemoryCoordinatorIsSwitchedOff() async throws {
        let coordinator = InMemoryCoordinator(clock: ManualClock())
        let watch = try await coordinator.watch(after: Revision(rawValue: 0))
        coordinator.setAvailable(false)
        #expect(await errorCode { () async throws(CoordinationError) in for try await _ in watch {} } == .unavailable)
    }

    /// Its own etcd, since stopping it is the point.
    @Test func aWatchEndsWithUnavailableWhenEtcdStops() async throws {
        let etcd = try await PrivateEtcd.start()
        let coordinator: EtcdCoordinator
        do {
            coordinator = try EtcdCoordinator(endpoints: [etcd.endpoint], groupPrefix: "/watch-end/")
        } catch {
            await etcd.stop()
            throw error
        }
        do {
            let start = try await coordinator.read()
            let watch = try await coordinator.watch(after: start.revision)
            let lease = try await coordinator.grantLease(ttl: .seconds(30))
            _ = try expectWon(try await coordinator.claimLeadership(
                state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
            var iterator = watch.makeAsyncIterator()
            #expect(try await iterator.next()?.holder?.identity == alpha)
            await etcd.stop()
            let code = await errorCode { () async throws(CoordinationError) in while try await iterator.next() != nil {} }
            #expect(code == .unavailable)
        } catch {
            await etcd.stop()
            try? await coordinator.shutdown()
            throw error
        }
        try await coordinator.shutdown()
    }

    @Test func aWatchFromACompactedRevisionIsRefused() async throws {
        let coordinator = InMemoryCoordinator(clock: ManualClock(), historyLimit: 2)
        let lease = try await coordinator.grantLease(ttl: .seconds(10))
        _ = try expectWon(try await coordinator.claimLeadership(
            state: bootstrap(alpha), holder: alpha, lease: lease.id, expecting: nil))
        #expect(try await coordinator.resign(lease: lease.id))
        _ = try expectWon(try await coordinator.claimLeadership(
            state: takeover(bootstrap(alpha), by: alpha), holder: alpha, lease: lease.id,
            expecting: Revision(rawValue: 1)))
        let code = await errorCode { () async throws(CoordinationError) in
            _ = try await coordinator.watch(after: Revision(rawValue: 0))
        }
        #expect(code == .revisionCompacted)
    }
}
