import ArgumentParser
import DurableQueue
import Foundation
import DurableLog

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every frame (CRC, header, LSN continuity, segment sequence) and decompress every payload.",
        discussion: """
            Exit 0 clean, 1 torn tail (what recovery would cut), 2 corruption of confirmed data. Given a store \
            directory (or its wal/), also loads the checkpoint and replays the log after it as opening the store \
            would; a failure there is exit 2.

            Example: walctl verify /var/lib/app/store
            """)

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        let target = try resolveTarget(directory)
        let start = Date()
        let progress = ProgressLine()
        let log = try reporting {
            try LogInspector.inspect(directory: target.log, verifyPayloads: true, progress: progress.update)
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(start)
        let bytes = log.segments.reduce(0) { $0 + $1.sizeBytes }
        let frames = log.segments.reduce(0) { $0 + $1.frames }
        let verdict = log.verdict
        // The store's own view: the checkpoint and the replay after it, by the code the store opens with.
        var storeLine: String?
        var storeFailure: QueueError?
        if let store = target.store, verdict.exitStatus != ExitStatus.corruption {
            do {
                let summary = try StoreInspector.summarize(directory: store)
                storeLine = "store: checkpoint LSN \(summary.checkpointLSN), \(summary.replayedRecords) record(s) replayed "
                    + "after it, \(summary.queues.count) queue(s), \(summary.streams.count) stream(s): consistent"
            } catch {
                storeFailure = error
                storeLine = "store: \(error)"
            }
        }
        let status = storeFailure.map { $0.code == .corruption ? ExitStatus.corruption : ExitStatus.ioError }
            ?? verdict.exitStatus
        if json {
            var object: [String: Any] = [
                "directory": directory, "state": verdict.name, "segments": log.segments.count, "frames": frames,
                "records": log.nextLSN.rawValue - log.firstLSN.rawValue, "bytes": bytes, "seconds": seconds,
            ]
            switch verdict {
            case .clean: break
            case .tornTail(let cut), .corruption(let cut): object["finding"] = cut.json
            }
            if let plan = log.salvagePlan { object["salvagePlan"] = plan.summary }
            if !log.lostLSNs.isEmpty { object["lostLSNs"] = log.lostLSNs.map { [$0.lowerBound, $0.upperBound] } }
            if let storeLine { object["store"] = storeLine }
            print(jsonLine(object))
        } else {
            print("\(verdict.name): \(log.segments.count) segment(s), \(frames) frame(s), "
                  + "LSN \(log.firstLSN) through \(log.nextLSN.rawValue - 1)"
                  + String(format: ", %.1f MB in %.2f s", Double(bytes) / 1e6, seconds))
            switch verdict {
            case .clean: break
            case .tornTail(let cut): print(cut.text)
            case .corruption(let cut):
                print(cut.text)
                print("  do not open this log for writing; copy it aside, restore the damaged records from a "
                      + "replica or backup, or salvage it (walctl recover --salvage):")
                if let plan = log.salvagePlan { print("  " + plan.summary) }
            }
            if let storeLine { print(storeLine) }
        }
        throw ExitCode(status)
    }
}
