import ArgumentParser
import DurableQueue
import Foundation

struct Queues: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queues and streams of a store directory (its checkpoint plus the log after it; read-only).")

    @Argument(help: "The store directory (the one holding `checkpoint` and `wal/`).") var directory: String
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        try requireLogDirectory(directory)
        let summary: StoreInspector.Summary
        do {
            summary = try StoreInspector.summarize(directory: directory)
        } catch {
            FileHandle.standardError.write(Data("walctl: \(error)\n".utf8))
            throw ExitCode(error.code == .corruption ? ExitStatus.corruption : ExitStatus.ioError)
        }
        if json {
            let object: [String: Any] = [
                "directory": directory, "checkpointLSN": summary.checkpointLSN, "replayedRecords": summary.replayedRecords,
                "lastLSN": summary.lastLSN, "liveBytes": summary.liveBytes,
                "queues": summary.queues.map {
                    ["name": $0.name, "ready": $0.ready, "unacked": $0.unacked, "deadLettered": $0.deadLettered,
                     "liveBytes": $0.liveBytes] as [String: Any]
                },
                "streams": summary.streams.map {
                    ["name": $0.name, "firstOffset": $0.firstOffset, "nextOffset": $0.nextOffset, "bytes": $0.bytes,
                     "committedOffsets": $0.committedOffsets] as [String: Any]
                },
            ]
            print(jsonLine(object))
            return
        }
        print("store       \(directory)")
        print("checkpoint  \(summary.checkpointLSN == 0 ? "none" : "LSN \(summary.checkpointLSN)"), then \(summary.replayedRecords) records to LSN \(summary.lastLSN)")
        print("live bytes  \(summary.liveBytes)")
        print("")
        print(pad("queue", 24) + pad("ready", 10) + pad("unacked", 10) + pad("dead-lettered", 15) + "live bytes")
        for q in summary.queues {
            print(pad(q.name, 24) + pad("\(q.ready)", 10) + pad("\(q.unacked)", 10) + pad("\(q.deadLettered)", 15) + "\(q.liveBytes)")
        }
        if !summary.streams.isEmpty {
            print("")
            print(pad("stream", 24) + pad("first offset", 14) + pad("next offset", 14) + pad("bytes", 12) + "committed offsets")
            for s in summary.streams {
                let groups = s.committedOffsets.keys.sorted().map { "\($0)=\(s.committedOffsets[$0]!)" }.joined(separator: " ")
                print(pad(s.name, 24) + pad("\(s.firstOffset)", 14) + pad("\(s.nextOffset)", 14) + pad("\(s.bytes)", 12) + groups)
            }
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
