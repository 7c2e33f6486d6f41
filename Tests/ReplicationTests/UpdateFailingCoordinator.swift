import Coordination
import Synchronization

/// A coordinator that forwards every call to an in-memory one, except that, once armed, the next
/// `updateState` times out as a call to an unreachable etcd would: the outcome of that write is unknown to its
/// caller. (Here it is never applied.)
final class UpdateFailingCoordinator: Coordinator {
    let inner: InMemoryCoordinator
    private let armed = Atomic<Bool>(false)
    private let failedCount = Atomic<Int>(0)

    init(_ inner: InMemoryCoordinator) { self.inner = inner }

    /// Makes the next `updateState` fail with `.timedOut`.
    func failNextUpdate() { armed.store(true, ordering: .sequentiallyConsistent) }

    /// How many updates failed so far.
    var failed: Int { failedCount.load(ordering: .sequentiallyConsistent) }

    func updateState(_ state: GroupState, lease: LeaseID,
                     expecting: Revision) async throws(CoordinationError) -> UpdateOutcome {
        if armed.exchange(false, ordering: .sequentiallyConsistent) {
            failedCount.add(1, ordering: .sequentiallyConsistent)
            throw CoordinationError(.timedOut, "the update got no answer (injected)")
        }
        return try await inner.updateState(state, lease: lease, expecting: expecting)
    }

    func grantLease(ttl: Duration) async throws(CoordinationError) -> Lease { try await inner.grantLease(ttl: ttl) }
    func renew(_ lease: LeaseID) async throws(CoordinationError) -> Duration? { try await inner.renew(lease) }
    func revoke(_ lease: LeaseID) async throws(CoordinationError) { try await inner.revoke(lease) }
    func read() async throws(CoordinationError) -> GroupSnapshot { try await inner.read() }
    func claimLeadership(state: GroupState, holder: ReplicaIdentity, lease: LeaseID,
                         expecting: Revision?) async throws(CoordinationError) -> ClaimOutcome {
        try await inner.claimLeadership(state: state, holder: holder, lease: lease, expecting: expecting)
    }
    func resign(lease: LeaseID) async throws(CoordinationError) -> Bool { try await inner.resign(lease: lease) }
    func watch(after: Revision) async throws(CoordinationError) -> CoordinationWatch { try await inner.watch(after: after) }
}
