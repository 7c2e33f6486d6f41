import ArgumentParser
import DurableQueue
import Foundation
import DurableLog

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut a torn tail as opening the log would; with --salvage, also take damaged confirmed records out.",
        discussion: """
            Takes the writer's lock; fails if a process has the log open. Without --salvage, corruption of \
            confirmed data is refused (exit 2) and nothing changes. With --salvage, a damaged span between intact \
            frames is replaced by a lost-records frame and everything after it kept; damage that cannot be bounded \
            is cut. Salvage deletes nothing: what leaves the log is moved or copied to its quarantine/ directory \
            first (walctl quarantine lists it). --dry-run shows the plan. Exit codes as for verify.

            Example: walctl recover --dry-run /var/lib/app/store
            """)

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Flag(help: "Show what would be done without changing anything.") var dryRun = false
    @Flag(help: "Take damaged confirmed records out of the log (to quarantine) instead of refusing.") var salvage = false

    func run() throws {
        let target = try resolveTarget(directory)
        if dryRun {
            let log = try reporting { try LogInspector.inspect(directory: target.log) }
            switch log.verdict {
            case .clean: print("clean: nothing to cut")
            case .tornTail(let cut): print("would cut a torn tail:\n" + cut.text)
            case .corruption(let cut):
                print("corruption: recover refuses this log without --salvage\n" + cut.text)
                if let plan = log.salvagePlan { print("with --salvage: " + plan.summary) }
            }
            throw ExitCode(log.verdict.exitStatus)
        }
        let report = try reporting { try LogInspector.recover(directory: target.log, salvage: salvage) }
        if let cut = report.tornTail { print("cut a torn tail:\n" + cut.text) }
        for patch in report.patches {
            print("salvaged: LSN \(patch.lostLSNs.lowerBound)...\(patch.lostLSNs.upperBound) marked lost (\(patch.bytes) "
                  + "damaged bytes at byte \(patch.offset) of \(patch.path), copied to \(patch.quarantinedTo ?? "?"))")
        }
        if let cut = report.salvaged, case .cut = report.salvagePlan {
            print("salvaged by a cut (the damage could not be bounded); what was cut is in quarantine:\n" + cut.text)
        }
        if report.tornTail == nil && report.patches.isEmpty && report.salvaged == nil { print("clean: nothing to cut") }
        print("the log continues at LSN \(report.nextLSN)")
        if let store = target.store, !report.lostLSNs.isEmpty {
            // What the store's next open will make of the lost records (the same code the store runs).
            do {
                let summary = try StoreInspector.summarize(directory: store)
                if let s = summary.salvage { print(s.text) }
            } catch {
                print("the store will not open: \(error)")
                throw ExitCode(ExitStatus.corruption)
            }
        }
    }
}

extension SalvageReport {
    var text: String {
        var lines = ["the store's next open drops \(droppedMessages.count) message(s) and \(droppedHalfMessages.count) half message(s) whose bodies were lost"]
        for m in droppedMessages.prefix(20) { lines.append("  queue '\(m.queue)' message \(m.id)") }
        if droppedMessages.count > 20 { lines.append("  ... and \(droppedMessages.count - 20) more") }
        if !lostStreamRecords.isEmpty {
            lines.append("\(lostStreamRecords.count) stream record(s) lost (their offsets stay; reads skip them)")
        }
        if !uncertainLSNs.isEmpty {
            lines.append("records after the checkpoint were lost (LSN " + uncertainLSNs.map { "\($0.lowerBound)...\($0.upperBound)" }
                .joined(separator: ", ") + "): what they did (publishes, acks, offset commits) is unknown")
        }
        return lines.joined(separator: "\n")
    }
}
