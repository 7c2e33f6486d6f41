import ArgumentParser
import DurableQueue
import Foundation

struct Queues: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queues, streams, idempotent producers and pending half messages of a store directory (its checkpoint plus the log after it; read-only).",
        discussion: """
            Rebuilds the state with the code the store opens with; a store that would not open (damage, a \
            checkpoint the log does not continue) is exit 2 with the reason, never a partial table.

            Example: walctl queues --json /var/lib/app/store
            """)

    @Argument(help: "The store directory (the one holding `checkpoint` and `wal/`).") var directory: String
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        let target = try resolveTarget(directory)
        let trimmed = target.log.hasSuffix("/") ? String(target.log.dropLast()) : target.log
        let store = target.store ?? (trimmed.hasSuffix("/wal") ? String(trimmed.dropLast(4)) : directory)
        let summary: StoreInspector.Summary
        do {
            summary = try StoreInspector.summarize(directory: store)
        } catch {
            FileHandle.standardError.write(Data("walctl: \(error)\n".utf8))
            throw ExitCode(error.code == .corruption ? ExitStatus.corruption : ExitStatus.ioError)
        }
        if json {
            let object: [String: Any] = [
                "directory": store, "checkpointLSN": summary.checkpointLSN.rawValue, "replayedRecords": summary.replayedRecords,
                "lastLSN": summary.lastLSN.rawValue, "liveBytes": summary.liveBytes,
                "queues": summary.queues.map {
                    ["name": $0.name, "ready": $0.ready, "unacked": $0.unacked, "deadLettered": $0.deadLettered,
                     "liveBytes": $0.liveBytes] as [String: Any]
                },
                "streams": summary.streams.map {
                    ["name": $0.name, "firstOffset": $0.firstOffset.rawValue, "nextOffset": $0.nextOffset.rawValue, "bytes": $0.bytes,
                     "committedOffsets": $0.committedOffsets.mapValues(\.rawValue)] as [String: Any]
                },
                "producers": summary.producers.map {
                    ["name": $0.name, "id": $0.id.rawValue, "epoch": $0.epoch, "lastActive": $0.lastActive,
                     "lastSequences": $0.lastSequences.mapValues(\.rawValue)] as [String: Any]
                },
                "halfMessages": summary.halfMessages.map {
                    ["id": $0.id.rawValue, "queue": $0.queue, "checks": $0.checks, "preparedAt": $0.preparedAt] as [String: Any]
                },
                "uncommittedOperations": summary.uncommittedOperations,
            ]
            print(jsonLine(object))
            return
        }
        print("store       \(store)")
        if let salvage = summary.salvage { print(salvage.text) }
        print("checkpoint  \(summary.checkpointLSN == .none ? "none" : "LSN \(summary.checkpointLSN)"), then \(summary.replayedRecords) records to LSN \(summary.lastLSN)")
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
        if !summary.producers.isEmpty {
            print("")
            print(pad("idempotent producer", 24) + pad("id", 14) + pad("epoch", 8) + "last sequences")
            for p in summary.producers {
                let last = p.lastSequences.keys.sorted().map { "\($0)=\(p.lastSequences[$0]!)" }.joined(separator: " ")
                print(pad(p.name, 24) + pad("\(p.id)", 14) + pad("\(p.epoch)", 8) + last)
            }
        }
        if !summary.halfMessages.isEmpty {
            print("")
            print(pad("half message", 24) + pad("queue", 24) + pad("checks", 8) + "prepared at (ms since 1970)")
            for h in summary.halfMessages {
                print(pad("\(h.id)", 24) + pad(h.queue, 24) + pad("\(h.checks)", 8) + "\(h.preparedAt)")
            }
        }
        if summary.uncommittedOperations > 0 {
            print("")
            print("uncommitted transaction operations at the log's end: \(summary.uncommittedOperations) (the next open drops them)")
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
