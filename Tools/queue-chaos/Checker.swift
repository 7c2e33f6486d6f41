import NodeWire

/// The verdict on a campaign, in the style of Jepsen's total-queue checker: every confirmed message is
/// delivered (none lost), none is stored twice (no duplicates), and nothing is delivered that no client
/// sent or that the group definitely refused (nothing unexpected). Indeterminate outcomes are allowed
/// either way; how many the producers' retries settled is reported.
struct Verdict: Codable {
    var attempted = 0
    var confirmed = 0
    var delivered = 0
    var lost: [String] = []
    var duplicated: [String] = []
    var unexpected: [String] = []
    /// Messages delivered again after their ack was confirmed to a consumer (by message id): an ack the group
    /// lost.
    var redeliveredAfterAck: [String] = []
    /// Deliveries to the consumers that ran during the faults, and how many of their acks were confirmed.
    var consumedDuringFaults = 0
    var ackedDuringFaults = 0
    /// Deliveries of a message that had been delivered before (its ack not confirmed): allowed, counted.
    var redelivered = 0
    /// Sequences that had an indeterminate outcome at least once.
    var indeterminate = 0
    /// ... and were then settled (confirmed, as stored or as a duplicate).
    var indeterminateRecovered = 0
    /// Sequences the campaign ended before settling (delivered or not, both are allowed).
    var unsettled = 0
    /// Answers no correct group gives (see `History.anomaly`), and epochs that went back.
    var anomalies: [String] = []

    /// False when the queue could not be drained: then lost, duplicated and unexpected were not checked.
    var deliveriesChecked = true

    /// A check failed: a bug, not a group that got stuck.
    var violated: Bool {
        !lost.isEmpty || !duplicated.isEmpty || !unexpected.isEmpty || !redeliveredAfterAck.isEmpty || !anomalies.isEmpty
    }

    var passed: Bool { deliveriesChecked && !violated }

    /// - Parameters:
    ///   - consumed: what the consumers running during the faults were given, in order.
    ///   - drained: the final drain's messages (nil when the queue could not be drained).
    init(history: History, consumed: [Deliveries.Event], drained: [DrainedMessage]?, epochRegressions: [String]) {
        let entries = history.entries
        attempted = entries.count
        confirmed = entries.values.count { $0.confirmed != nil }
        indeterminate = entries.values.count { $0.indeterminate }
        indeterminateRecovered = entries.values.count { $0.indeterminate && $0.confirmed != nil }
        unsettled = entries.values.count { $0.confirmed == nil }
        anomalies = history.anomalies + epochRegressions
        guard let drained else {
            deliveriesChecked = false
            return
        }
        // Every delivery in order: the consumers' during the faults, then the drain's.
        let events = consumed + drained.map { Deliveries.Event.delivered(id: $0.id, body: $0.body) }
        var idsByBody: [String: Set<UInt64>] = [:]
        var ackConfirmed: Set<UInt64> = []
        var seen: Set<UInt64> = []
        for event in events {
            switch event {
            case .delivered(let id, let body):
                idsByBody[body, default: []].insert(id)
                if ackConfirmed.contains(id) { redeliveredAfterAck.append("\(body) (id \(id))") }
                if !seen.insert(id).inserted { redelivered += 1 }
            case .acked(let id):
                ackConfirmed.insert(id)
            }
        }
        consumedDuringFaults = consumed.count { if case .delivered = $0 { true } else { false } }
        ackedDuringFaults = consumed.count { if case .acked = $0 { true } else { false } }
        delivered = idsByBody.count
        lost = entries.filter { $0.value.confirmed != nil && idsByBody[$0.key] == nil }.map(\.key).sorted()
        duplicated = idsByBody.filter { $0.value.count > 1 }.map(\.key).sorted()
        unexpected = idsByBody.keys.filter { body in
            guard let entry = entries[body] else { return true }  // never sent
            return entry.confirmed == nil && !entry.indeterminate  // only ever refused
        }.sorted()
    }
}
