import Foundation
import Testing
import WALSimulation
@testable import DurableQueue

/// What the exactly-once child (QueueCrashChild/ExactlyOnce.swift) reported before it was killed.
struct ExactlyOnceReport: ChildLines {
    var inputs: [UInt64: String] = [:]
    var transformed: Set<UInt64> = []
    var storedSequences: Set<UInt64> = []
    var highestSequence: UInt64 = 0
    var prepared: [UInt64: Character] = [:]
    var committedHalves: Set<UInt64> = []
    var rolledBackHalves: Set<UInt64> = []
    var transactions = 0

    mutating func parse(_ line: Substring) {
        let parts = line.split(separator: " ").map(String.init)
        switch parts.first {
        case "P": inputs[UInt64(parts[1])!] = parts[2]
        case "X":
            transformed.insert(UInt64(parts[1])!)
            transactions += 1
        case "I":
            storedSequences.insert(UInt64(parts[1])!)
            highestSequence = max(highestSequence, UInt64(parts[1])!)
        case "i": highestSequence = max(highestSequence, UInt64(parts[1])!)
        case "H": prepared[UInt64(parts[1])!] = parts[2].first!
        case "HC": committedHalves.insert(UInt64(parts[1])!)
        case "HR": rolledBackHalves.insert(UInt64(parts[1])!)
        default: break
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ExactlyOnceCrashTests {
    /// `kill -9` a child running transactions (consume-transform-produce), an idempotent producer and half
    /// messages, then check: every input is either still queued with no output or gone with exactly one of
    /// each output; the idempotent queue holds sequences 1...n once each; every half message ends committed
    /// or rolled back as its flag says, never both, and the check-back resolves those left pending.
    @Test func transactionsIdempotenceAndHalfMessagesSurviveKillDashNine() async throws {
        var generator = SplitMix64(seed: testSeed("ExactlyOnceCrashTests"))
        var totals = (transactions: 0, sequences: 0, halves: 0, resends: 0)
        for round in 0..<20 {
            let dir = TemporaryDirectory()
            var report = ExactlyOnceReport()
            let runs = round % 3 == 0 ? 2 : 1
            for run in 0..<runs {
                // Resume a little before the last reported sequence: those were stored, and maybe a few more.
                let resend = UInt64.random(in: 0...8, using: &generator)
                let first = max(1, report.highestSequence + 1 - min(resend, report.highestSequence))
                if report.highestSequence > 0 { totals.resends += Int(report.highestSequence + 1 - first) }
                let steps = Int.random(in: 300...5000, using: &generator)
                let early = round % 5 == 4 && run == runs - 1
                let after = early ? UInt32.random(in: 1_000...60_000, using: &generator) : nil
                let path = dir.path
                report = try await offThePool { [report] in
                    var r = report
                    try runQueueChild(directory: path, tag: "r\(round)x\(run)", extraArguments: ["exactly-once", "\(first)"],
                                      steps: steps, afterMicroseconds: after, into: &r)
                    return r
                }
            }
            try await verify(dir.path, report, round: round)
            totals.transactions += report.transactions
            totals.sequences += report.storedSequences.count
            totals.halves += report.prepared.count
        }
        #expect(totals.transactions > 1000 && totals.sequences > 1000 && totals.halves > 100 && totals.resends > 10,
                "\(totals)")
    }

    private func verify(_ directory: String, _ report: ExactlyOnceReport, round: Int) async throws {
        var options = immediateChecks(maxChecks: 100)
        options.log.recordBytesMax = (16 << 10) - 4
        options.log.frameBytesMax = 16 << 10
        let store = try await QueueStore.open(directory: directory, options: options)
        defer { try? store.close() }
        guard store.queueInfo("in") != nil else { return }  // killed before declaring its queues

        // Transactions: all or nothing, exactly once.
        let inputs = Set(try await drain("in", store).map(\.messageID.rawValue))
        let outputs = try await drain("out", store).map(\.text)
        let outputs2 = try await drain("out2", store).map(\.text)
        #expect(Set(outputs).count == outputs.count && Set(outputs2).count == outputs2.count,
                "round \(round): an output stored twice")
        let transformed = Set(outputs.map { UInt64($0.dropFirst(2))! })
        #expect(Set(outputs2.map { UInt64($0.dropFirst(2))! }) == transformed, "round \(round): half a transaction")
        #expect(inputs.isDisjoint(with: transformed), "round \(round): an input both queued and transformed")
        for id in report.inputs.keys {
            #expect(inputs.contains(id) || transformed.contains(id), "round \(round): input \(id) lost")
        }
        #expect(report.transformed.isSubset(of: transformed), "round \(round): a committed transaction lost")

        // Idempotent producer: 1...n once each, n at least the highest stored sequence reported.
        let sequences = try await drain("iq", store).map { UInt64($0.text.dropFirst(4))! }
        let storedTwice = sequences.count - Set(sequences).count
        let firstOutOfPlace = zip(sequences, 1...).first { $0.0 != UInt64($0.1) }.map { "\($0.0) at position \($0.1)" }
        #expect(storedTwice == 0 && firstOutOfPlace == nil, "round \(round): sequences are not 1...n once each")
        #expect(UInt64(sequences.count) >= (report.storedSequences.max() ?? 0), "round \(round): a stored sequence lost")

        // Half messages: the check-back resolves every pending one; the outcome always follows the flag.
        // (The child's checker answers "unknown" once for flag u; here every flag but r means commit.)
        store.setHalfMessageChecker { $0.message.body.last == UInt8(ascii: "r") ? .rollback : .commit }
        for _ in 0..<5 where !store.halfMessages().isEmpty { await store.checkHalfMessages() }
        #expect(store.halfMessages().isEmpty, "round \(round): half messages left pending")
        let visible = try await drain("hq", store)
        #expect(Set(visible.map(\.messageID)).count == visible.count, "round \(round): a half message committed twice")
        #expect(visible.allSatisfy { $0.text.last != "r" }, "round \(round): a rolled-back half message is visible")
        let visibleIDs = Set(visible.map(\.messageID.rawValue))
        for (id, flag) in report.prepared {
            #expect(visibleIDs.contains(id) == (flag != "r"), "round \(round): half message \(id) flag \(flag)")
        }
        #expect(report.committedHalves.isSubset(of: visibleIDs) && report.rolledBackHalves.isDisjoint(with: visibleIDs),
                "round \(round)")
    }

}
