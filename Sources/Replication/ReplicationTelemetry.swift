import CoreMetrics

/// What a replica tells the application's metrics backend (swift-metrics; `LogOptions.metricsFactory`, else
/// the bootstrapped one) about its group, the figures an operator alerts on (Kafka's under-replicated and
/// ISR shrink/expand metrics). Updated when the in-sync set or the role changes, never per record. Every
/// metric carries `member` = this replica's member name.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `replication_leader` | gauge | 1 while this node leads its group, else 0 |
/// | `replication_in_sync_replicas` | gauge | while it leads: the in-sync set's size, itself included (below the replication factor: under-replicated; below `minInsyncReplicas`: writes refused); 0 otherwise |
/// | `replication_in_sync_changes_total` | counter, per `change` = `joined` / `left` | changes of the in-sync set this node made as leader |
/// | `replication_terms_total` | counter | terms this node began to lead (elections it won) |
/// | `replication_refusals_total` | counter, per `reason` = `staleEpoch` / `otherLog` / `cutBelowCommitted` / `protocolViolation` / `notLeader` / `logFailed` | replication sessions this node refused (as leader or follower; a connection refused because it does not lead counts as `notLeader`); any but `notLeader` means a misconfigured member, a deposed leader or a bug |
final class ReplicationTelemetry: Sendable {
    private let leader: Gauge
    private let inSyncReplicas: Gauge
    private let joined: Counter
    private let left: Counter
    private let terms: Counter
    private let refusals: [ReplicationMessage.Refusal: Counter]

    init(member: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        let d = [("member", member)]
        leader = Gauge(label: "replication_leader", dimensions: d, factory: factory)
        inSyncReplicas = Gauge(label: "replication_in_sync_replicas", dimensions: d, factory: factory)
        joined = Counter(label: "replication_in_sync_changes_total", dimensions: d + [("change", "joined")], factory: factory)
        left = Counter(label: "replication_in_sync_changes_total", dimensions: d + [("change", "left")], factory: factory)
        terms = Counter(label: "replication_terms_total", dimensions: d, factory: factory)
        refusals = Dictionary(uniqueKeysWithValues: ReplicationMessage.Refusal.allCases.map { reason in
            (reason, Counter(label: "replication_refusals_total", dimensions: d + [("reason", "\(reason)")], factory: factory))
        })
    }

    /// This node refused a session (or a connection), for `reason`.
    func refused(_ reason: ReplicationMessage.Refusal) { refusals[reason]?.increment() }

    /// A term began with this in-sync set.
    func startedLeading(inSync count: Int) {
        terms.increment()
        leader.record(1)
        inSyncReplicas.record(count)
    }

    /// The set changed (by a fenced update this leader made).
    func inSyncChanged(joined didJoin: Bool, count: Int) {
        (didJoin ? joined : left).increment()
        inSyncReplicas.record(count)
    }

    /// The term ended.
    func stoppedLeading() {
        leader.record(0)
        inSyncReplicas.record(0)
    }
}
