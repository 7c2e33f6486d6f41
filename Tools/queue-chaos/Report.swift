import Foundation

/// `walctl verify` on every replica's store and `walctl compare` across them, run after the members stopped.
struct LogChecks: Codable {
    /// Each store directory's `walctl verify` exit status (0 clean).
    var verify: [String: Int32] = [:]
    /// `walctl compare`'s exit status: 0 no difference, 1 a difference past the committed LSN only (an
    /// uncommitted tail a replica cuts when it rejoins), 2 confirmed records differ.
    var compare: Int32 = -1
    var compareOutput = ""

    var passed: Bool { verify.values.allSatisfy { $0 == 0 } && (compare == 0 || compare == 1) }

    init() {}

    init(walctl: String, stores: [String]) {
        for store in stores { verify[store] = Self.run(walctl, ["verify", store]).status }
        (compare, compareOutput) = Self.run(walctl, ["compare"] + stores)
    }

    private static func run(_ binary: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}

/// The campaign's figures and verdict, printed and written as JSON.
struct Report: Codable {
    var seed: UInt64
    var failoversAsked: Int
    var producers: Int
    var leaseMilliseconds: Int
    var failovers = 0
    var faults: [FaultRecord] = []
    var verdict = Verdict(history: History(), consumed: [], drained: [], epochRegressions: [])
    var logChecks = LogChecks()
    /// Why the campaign stopped early: no leader, or no confirm, within the limit after a fault.
    var stuck: String?

    /// Percentiles, over the faults that hit the leader, of the longest time without a confirm after each.
    var unavailability: [String: Double] {
        let times = faults.filter(\.fault.hitsLeader).compactMap(\.unavailableMilliseconds).sorted()
        guard !times.isEmpty else { return [:] }
        func at(_ q: Double) -> Double { times[min(times.count - 1, Int((Double(times.count) * q).rounded(.up)) - 1)] }
        return ["p50": at(0.5), "p99": at(0.99), "max": times.last!, "count": Double(times.count)]
    }

    func print() {
        let v = verdict
        say("""
            queue-chaos: seed \(seed): \(faults.count) faults, \(failovers) failovers; \(v.attempted) sequences \
            sent, \(v.confirmed) confirmed, \(v.delivered) delivered
              lost \(v.lost.count), duplicated \(v.duplicated.count), unexpected \(v.unexpected.count); \
            indeterminate \(v.indeterminate) (\(v.indeterminateRecovered) settled by a resend), unsettled at the end \(v.unsettled)
              consumed during the faults \(v.consumedDuringFaults) (\(v.ackedDuringFaults) acks confirmed), \
            delivered again \(v.redelivered), delivered again after a confirmed ack \(v.redeliveredAfterAck.count)
              unavailability after a leader fault (ms): \(unavailability.sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value))" }.joined(separator: ", "))
              walctl verify: \(logChecks.verify.values.allSatisfy { $0 == 0 } ? "clean" : "\(logChecks.verify)"); \
            walctl compare: exit \(logChecks.compare)
            """)
        for (label, items) in [("lost", v.lost), ("duplicated", v.duplicated), ("unexpected", v.unexpected), ("delivered again after a confirmed ack", v.redeliveredAfterAck),
                               ("anomalies", v.anomalies)] where !items.isEmpty {
            say("  \(label): \(items.prefix(20).joined(separator: ", "))")
        }
        if logChecks.compare > 1 || logChecks.compare < 0 { say(logChecks.compareOutput) }
        if !v.deliveriesChecked { say("  the queue could not be drained: deliveries not checked") }
        if let stuck { say("  stuck: \(stuck)") }
        if !(verdict.passed && logChecks.passed) {
            say("queue-chaos: FAIL (seed \(seed))")
        } else if stuck != nil {
            // Nothing checked failed, but the campaign did not finish: not a pass.
            say("queue-chaos: STUCK (seed \(seed)); every check of what ran passed")
        } else {
            say("queue-chaos: PASS")
        }
    }

    func write(to path: String) throws {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
        object["unavailabilityMilliseconds"] = unavailability
        object["passed"] = verdict.passed && logChecks.passed && stuck == nil
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: path))
    }
}
