import Foundation
import Synchronization

/// `Coordinator` on etcd (3.4 or later) through its v3 JSON gateway, over async-http-client.
///
/// One group's keys live under `groupPrefix`: `<groupPrefix>leader` (the leader's `ReplicaIdentity` as JSON,
/// bound to its lease) and `<groupPrefix>state` (the `GroupState` as JSON). DESIGN.md, "Coordination on etcd",
/// gives the transactions byte by byte.
///
/// Call `shutdown()` when done: it ends every watch and closes the connections (the HTTP client traps in debug
/// builds when it is released without one).
public final class EtcdCoordinator: Coordinator {
    /// The key bound to the leader's lease.
    public let leaderKey: String
    /// The key holding the group state.
    public let stateKey: String

    private let prefix: Data
    private let transport: EtcdTransport
    /// The running watches: their reading task and the stream they feed, so that `shutdown()` can end both.
    private let watches = Mutex<[Int: (task: Task<Void, Never>, continuation: WatchContinuation)]>([:])
    private let nextWatch = Atomic<Int>(0)

    /// A coordinator for the group whose keys start with `groupPrefix` (ends with "/", e.g. "/durable-queue/orders/"),
    /// on etcd at `endpoints` (e.g. ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]; reads and keepalives go to
    /// the next one when one cannot be reached). `requestTimeout` bounds each call, not a watch.
    /// - Throws: `.invalidArgument` for an empty or malformed endpoint list, a prefix without a final "/", or a
    ///   timeout that is not positive.
    public init(endpoints: [String], groupPrefix: String,
                requestTimeout: Duration = .seconds(5)) throws(CoordinationError) {
        guard groupPrefix.hasSuffix("/"), groupPrefix.count > 1 else {
            throw CoordinationError(.invalidArgument, "a group prefix ends with \"/\": \(groupPrefix)")
        }
        leaderKey = groupPrefix + "leader"
        stateKey = groupPrefix + "state"
        prefix = Data(groupPrefix.utf8)
        transport = try EtcdTransport(endpoints: endpoints, requestTimeout: requestTimeout)
    }

    /// Ends every watch with `.shutDown` and shuts the HTTP client down; every later call throws `.shutDown`.
    /// - Throws: `.shutDown` when it was already shut down.
    public func shutdown() async throws(CoordinationError) {
        let running = watches.withLock { w in defer { w.removeAll() }; return Array(w.values) }
        for watch in running {
            watch.continuation.finish(throwing: CoordinationError(.shutDown, "the coordinator was shut down"))
            watch.task.cancel()
        }
        try await transport.shutdown()
    }

    private var leaderKeyBytes: Data { Data(leaderKey.utf8) }
    private var stateKeyBytes: Data { Data(stateKey.utf8) }

    // MARK: - Leases

    public func grantLease(ttl: Duration) async throws(CoordinationError) -> Lease {
        // etcd's TTL is whole seconds: round up, so the lease is never shorter than asked.
        let (seconds, attoseconds) = ttl.components
        let request = EtcdLeaseGrantRequest(TTL: EtcdInt64(attoseconds > 0 ? seconds + 1 : seconds))
        let body = try await transport.post("/v3/lease/grant", try EtcdJSON.encode(request), idempotent: false)
        let response = try EtcdJSON.decode(EtcdLeaseGrantResponse.self, from: body, what: "lease grant")
        if let error = response.error, !error.isEmpty { throw CoordinationError(.rejected, error) }
        guard let id = response.ID?.value, id != 0, let granted = response.TTL?.value else {
            throw CoordinationError(.malformedResponse, "a lease grant without an ID or TTL")
        }
        return Lease(id: LeaseID(rawValue: id), ttl: .seconds(granted))
    }

    public func renew(_ lease: LeaseID) async throws(CoordinationError) -> Duration? {
        // The gateway's keepalive is a stream: one request line, one response line, then it closes.
        let request = EtcdLeaseIDRequest(ID: EtcdInt64(lease.rawValue))
        let body = try await transport.post("/v3/lease/keepalive", try EtcdJSON.encode(request), idempotent: true)
        guard let line = body.split(separator: UInt8(ascii: "\n")).first else {
            throw CoordinationError(.malformedResponse, "an empty keepalive response")
        }
        let response = try EtcdJSON.decode(EtcdKeepAliveLine.self, from: Data(line), what: "keepalive")
        guard let result = response.result else {
            throw CoordinationError(.unavailable, "the keepalive stream ended with an error: \(String(decoding: line, as: UTF8.self))")
        }
        // A dead lease is not an error to etcd: its TTL is left out (zero).
        guard let ttl = result.TTL?.value, ttl > 0 else { return nil }
        return .seconds(ttl)
    }

    public func revoke(_ lease: LeaseID) async throws(CoordinationError) {
        let request = EtcdLeaseIDRequest(ID: EtcdInt64(lease.rawValue))
        _ = try await transport.post("/v3/lease/revoke", try EtcdJSON.encode(request), idempotent: false)
    }

    // MARK: - The keys

    public func read() async throws(CoordinationError) -> GroupSnapshot {
        try await read(at: nil)
    }

    public func claimLeadership(state: GroupState, holder: ReplicaIdentity, lease: LeaseID,
                                expecting: Revision?) async throws(CoordinationError) -> ClaimOutcome {
        try state.validate()
        guard state.leader == holder else {
            throw CoordinationError(.invalidArgument, "the claimed state must name \(holder) as leader")
        }
        let txn = EtcdTxnRequest(
            compare: [.noKey(leaderKeyBytes), .modified(stateKeyBytes, at: expecting?.rawValue ?? 0)],
            success: [
                EtcdRequestOp(request_put: EtcdPutRequest(key: leaderKeyBytes, value: try encodeValue(holder),
                                                          lease: EtcdInt64(lease.rawValue))),
                EtcdRequestOp(request_put: EtcdPutRequest(key: stateKeyBytes, value: try encodeValue(state))),
            ],
            failure: rangeBothKeys(at: nil))
        let (succeeded, snapshot) = try await commit(txn)
        return succeeded ? .won(snapshot.revision) : .lost(snapshot)
    }

    public func updateState(_ state: GroupState, lease: LeaseID,
                            expecting: Revision) async throws(CoordinationError) -> UpdateOutcome {
        try state.validate()
        #if COORDINATION_BROKEN_UPDATE_WITHOUT_COMPARE
        let compare: [EtcdCompare] = []  // BROKEN ON PURPOSE (harness check builds only): an unfenced write.
        #else
        let compare: [EtcdCompare] = [.bound(leaderKeyBytes, to: lease.rawValue), .modified(stateKeyBytes, at: expecting.rawValue)]
        #endif
        let txn = EtcdTxnRequest(
            compare: compare,
            success: [EtcdRequestOp(request_put: EtcdPutRequest(key: stateKeyBytes, value: try encodeValue(state)))],
            failure: rangeBothKeys(at: nil))
        let (succeeded, snapshot) = try await commit(txn)
        return succeeded ? .applied(snapshot.revision) : .conflict(snapshot)
    }

    public func resign(lease: LeaseID) async throws(CoordinationError) -> Bool {
        let txn = EtcdTxnRequest(
            compare: [.bound(leaderKeyBytes, to: lease.rawValue)],
            success: [EtcdRequestOp(request_delete_range: EtcdDeleteRangeRequest(key: leaderKeyBytes))],
            failure: [])
        let body = try await transport.post("/v3/kv/txn", try EtcdJSON.encode(txn), idempotent: false)
        return try EtcdJSON.decode(EtcdTxnResponse.self, from: body, what: "txn").succeeded ?? false
    }

    public func watch(after: Revision) async throws(CoordinationError) -> CoordinationWatch {
        // The snapshots a watch yields are folded from its events onto the keys as they were at `after`
        // (revision 0 or less: before etcd's first revision, so nothing).
        let base: GroupSnapshot
        if after.rawValue >= 1 {
            base = try await read(at: after)
        } else {
            base = GroupSnapshot(state: nil, stateRevision: nil, holder: nil, revision: after)
        }
        let request = EtcdWatchCreateRequest(create_request: .init(
            key: prefix, range_end: Self.prefixEnd(prefix), start_revision: EtcdInt64(after.rawValue + 1)))
        let response = try await transport.openStream("/v3/watch", try EtcdJSON.encode(request))
        let id = nextWatch.add(1, ordering: .relaxed).newValue
        let (watch, continuation) = CoordinationWatch.makeStream { [weak self] in
            self?.watches.withLock { $0.removeValue(forKey: id) }?.task.cancel()
        }
        let folder = EtcdWatchFolder(base: base, leaderKey: leaderKeyBytes, stateKey: stateKeyBytes)
        let task = Task {
            await folder.run(response.body, into: continuation)
        }
        watches.withLock { $0[id] = (task, continuation) }
        return watch
    }

    // MARK: - Transactions

    /// Sends `txn` and returns whether it succeeded, with a snapshot: on success its revision is the write's
    /// (the new mod_revision of what it put); on failure it is read from the failure branch's two ranges.
    private func commit(_ txn: EtcdTxnRequest) async throws(CoordinationError) -> (Bool, GroupSnapshot) {
        let body = try await transport.post("/v3/kv/txn", try EtcdJSON.encode(txn), idempotent: false)
        let response = try EtcdJSON.decode(EtcdTxnResponse.self, from: body, what: "txn")
        guard let revision = response.header?.revision?.value else {
            throw CoordinationError(.malformedResponse, "a txn response without a header revision")
        }
        // etcd leaves `succeeded` out when it is false.
        if response.succeeded ?? false {
            return (true, GroupSnapshot(state: nil, stateRevision: nil, holder: nil, revision: Revision(rawValue: revision)))
        }
        return (false, try snapshot(from: response, revision: revision))
    }

    /// Both keys at `revision` (nil: now), in one txn with no compare, so that they are read at one revision.
    private func read(at revision: Revision?) async throws(CoordinationError) -> GroupSnapshot {
        let txn = EtcdTxnRequest(compare: [], success: rangeBothKeys(at: revision), failure: [])
        let body = try await transport.post("/v3/kv/txn", try EtcdJSON.encode(txn), idempotent: true)
        let response = try EtcdJSON.decode(EtcdTxnResponse.self, from: body, what: "txn")
        guard let current = response.header?.revision?.value else {
            throw CoordinationError(.malformedResponse, "a txn response without a header revision")
        }
        return try snapshot(from: response, revision: revision?.rawValue ?? current)
    }

    private func rangeBothKeys(at revision: Revision?) -> [EtcdRequestOp] {
        let at = revision.map { EtcdInt64($0.rawValue) }
        return [EtcdRequestOp(request_range: EtcdRangeRequest(key: leaderKeyBytes, revision: at)),
                EtcdRequestOp(request_range: EtcdRangeRequest(key: stateKeyBytes, revision: at))]
    }

    private func snapshot(from response: EtcdTxnResponse, revision: Int64) throws(CoordinationError) -> GroupSnapshot {
        guard let responses = response.responses, responses.count == 2 else {
            throw CoordinationError(.malformedResponse, "expected the two ranges of the leader and state keys")
        }
        var snapshot = GroupSnapshot(state: nil, stateRevision: nil, holder: nil, revision: Revision(rawValue: revision))
        if let leader = responses[0].response_range?.kvs?.first {
            snapshot.holder = try Self.holder(from: leader)
        }
        if let state = responses[1].response_range?.kvs?.first {
            (snapshot.state, snapshot.stateRevision) = try Self.state(from: state)
        }
        return snapshot
    }

    static func holder(from kv: EtcdKeyValue) throws(CoordinationError) -> LeaderHolder {
        guard let lease = kv.lease?.value, lease != 0, let created = kv.create_revision?.value else {
            throw CoordinationError(.malformedResponse, "a leader key without a lease or create revision")
        }
        let identity = try EtcdJSON.decode(ReplicaIdentity.self, from: kv.value ?? Data(), what: "leader key value")
        return LeaderHolder(identity: identity, lease: LeaseID(rawValue: lease), since: Revision(rawValue: created))
    }

    static func state(from kv: EtcdKeyValue) throws(CoordinationError) -> (GroupState, Revision) {
        guard let modified = kv.mod_revision?.value else {
            throw CoordinationError(.malformedResponse, "a state key without a mod revision")
        }
        let state = try EtcdJSON.decode(GroupState.self, from: kv.value ?? Data(), what: "state key value")
        return (state, Revision(rawValue: modified))
    }

    private func encodeValue(_ value: some Encodable) throws(CoordinationError) -> Data {
        try EtcdJSON.encode(value)
    }

    /// The end of the range of every key starting with `prefix`: the prefix with its last byte raised by one
    /// (etcd's convention; the prefix ends with "/", which is not 0xff).
    static func prefixEnd(_ prefix: Data) -> Data {
        var end = prefix
        end[end.index(before: end.endIndex)] += 1
        return end
    }
}
