import Coordination
import EtcdTestSupport
import Foundation
import Testing

/// The two implementations every contract test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory, etcd
    var testDescription: String { rawValue }
}

/// The etcd the suite shares (one start and one stop for the whole suite; each test has its own key prefix), or
/// why it could not be started: the etcd cases then fail with that reason, the in-memory ones still run.
enum SharedEtcd {
    @TaskLocal static var instance: Result<PrivateEtcd, PrivateEtcd.Failure>?

    static func require() throws -> PrivateEtcd {
        guard let instance else { throw PrivateEtcd.Failure(description: "the suite lacks the .sharedEtcd trait") }
        return try instance.get()
    }
}

/// Starts the private etcd before the suite's tests and stops it after them.
struct SharedEtcdTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let started: Result<PrivateEtcd, PrivateEtcd.Failure>
        do {
            started = .success(try await PrivateEtcd.start())
        } catch let failure as PrivateEtcd.Failure {
            started = .failure(failure)
        } catch {
            started = .failure(PrivateEtcd.Failure(description: "etcd did not start: \(error)"))
        }
        do {
            try await SharedEtcd.$instance.withValue(started) { try await function() }
        } catch {
            if case .success(let etcd) = started { await etcd.stop() }
            throw error
        }
        if case .success(let etcd) = started { await etcd.stop() }
    }
}

extension Trait where Self == SharedEtcdTrait {
    /// One private etcd for the suite.
    static var sharedEtcd: Self { SharedEtcdTrait() }
}

/// One test's coordination store and the nodes that talk to it: in memory, every node is the one shared
/// coordinator (as every etcd client reaches the one cluster); on etcd, every node is an `EtcdCoordinator` of its
/// own on the test's private key prefix. `close()` shuts the etcd clients down.
final class Harness: @unchecked Sendable {  // used by one test task at a time
    let backend: Backend
    let clock = ManualClock()
    private let memory: InMemoryCoordinator
    private let etcd: PrivateEtcd?
    private let prefix = "/coordination-tests/\(UUID().uuidString)/"
    private var clients: [EtcdCoordinator] = []

    init(_ backend: Backend) throws {
        self.backend = backend
        memory = InMemoryCoordinator(clock: clock)
        etcd = backend == .etcd ? try SharedEtcd.require() : nil
    }

    /// A node's view of the store.
    func node() throws -> any Coordinator {
        guard let etcd else { return memory }
        let client = try EtcdCoordinator(endpoints: [etcd.endpoint], groupPrefix: prefix)
        clients.append(client)
        return client
    }

    /// The in-memory coordinator (to switch it off); nil on etcd.
    var inMemory: InMemoryCoordinator? { backend == .inMemory ? memory : nil }

    /// Waits until `lease` (not renewed since it was granted with `ttl`) has expired and taken the leader key with
    /// it, as seen by `observer`. In memory: the clock moves past the TTL. On etcd: polls with a deadline, since
    /// only etcd's own timer expires the lease (2.0-2.1 s after the last keepalive here); no assertion depends on
    /// how long it took.
    func waitForExpiry(of lease: Lease, seenBy observer: any Coordinator) async throws {
        if backend == .inMemory {
            clock.advance(by: lease.ttl)
            return
        }
        let deadline = ContinuousClock.now + lease.ttl + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await observer.read().holder?.lease != lease.id { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("etcd did not expire lease \(lease.id) within \(lease.ttl) + 10 s")
    }

    func close() async {
        for client in clients { try? await client.shutdown() }
        clients.removeAll()
    }
}

/// Runs `body` with a harness and closes it whatever happens (an etcd client left open traps in debug builds).
func withHarness(_ backend: Backend, _ body: (Harness) async throws -> Void) async throws {
    let harness = try Harness(backend)
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

let alpha = ReplicaIdentity(member: "alpha", incarnation: 0xA1)
let bravo = ReplicaIdentity(member: "bravo", incarnation: 0xB2)
let charlie = ReplicaIdentity(member: "charlie", incarnation: 0xC3)

/// The first state of a group, as its first leader writes it.
func bootstrap(_ leader: ReplicaIdentity) -> GroupState {
    GroupState(epoch: 1, leader: leader, inSync: [leader], members: [alpha, bravo, charlie])
}

/// The state a new leader writes over `state`: the epoch raised, itself as leader.
func takeover(_ state: GroupState, by leader: ReplicaIdentity) -> GroupState {
    var next = state
    next.epoch += 1
    next.leader = leader
    if !next.inSync.contains(leader) { next.inSync.append(leader) }
    return next
}

/// The revision of a won claim, or a recorded failure.
func expectWon(_ outcome: ClaimOutcome, sourceLocation: SourceLocation = #_sourceLocation) throws -> Revision {
    guard case .won(let revision) = outcome else {
        Issue.record("expected the claim to win, got \(outcome)", sourceLocation: sourceLocation)
        throw PrivateEtcd.Failure(description: "claim lost")
    }
    return revision
}

/// The error code `body` throws, or nil.
func errorCode(_ body: () async throws(CoordinationError) -> Void) async -> CoordinationError.Code? {
    do {
        try await body()
        return nil
    } catch {
        return error.code
    }
}
