import ArgumentParser
import DurableQueue
import Foundation
import DurableLog

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Segments, LSN ranges, frames, records, compression and state of a log (read-only).")

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let target = try resolveTarget(directory)
        let progress = ProgressLine()
        let log = try reporting { try LogInspector.inspect(directory: target.log, progress: progress.update) }
        progress.finish()
        let checkpoint: String
        var checkpointLSN: Any = NSNull()
        if let store = target.store {
            do {
                let lsn = try StoreInspector.checkpointLSN(directory: store)
                checkpoint = lsn.map { "LSN \($0) (store \(store))" } ?? "none yet (store \(store))"
                if let lsn { checkpointLSN = lsn.rawValue }
            } catch {
                checkpoint = "unreadable: \(error)"
            }
        } else {
            checkpoint = "none"
        }
        let quarantined = quarantineEntries(target.log).count
        let stored = log.segments.reduce(0) { $0 + $1.storedPayloadBytes }
        let uncompressed = log.segments.reduce(0) { $0 + $1.uncompressedPayloadBytes }
        let records = log.segments.reduce(UInt64(0)) { $0 + $1.records }
        let ratio = stored == 0 ? 1.0 : Double(uncompressed) / Double(stored)
        if json {
            let segments: [[String: Any]] = log.segments.map {
                ["name": $0.name, "segmentID": $0.segmentID.rawValue, "firstLSN": $0.firstLSN.rawValue,
                 "lastLSN": $0.endLSN.rawValue - 1, "frames": $0.frames, "records": $0.records,
                 "sizeBytes": $0.sizeBytes, "frameBytes": $0.frameBytes,
                 "storedPayloadBytes": $0.storedPayloadBytes, "uncompressedPayloadBytes": $0.uncompressedPayloadBytes]
            }
            var object: [String: Any] = [
                "directory": directory, "segments": segments, "records": records, "state": log.verdict.name,
                "cleanShutdown": log.cleanShutdown, "firstLSN": log.firstLSN.rawValue,
                "nextLSN": log.nextLSN.rawValue, "compressionRatio": (ratio * 1000).rounded() / 1000,
                "writerHoldsLock": log.writerHoldsLock, "checkpointLSN": checkpointLSN,
            ]
            if !log.lostLSNs.isEmpty { object["lostLSNs"] = log.lostLSNs.map { [$0.lowerBound, $0.upperBound] } }
            if quarantined > 0 { object["quarantineEntries"] = quarantined }
            if let identity = log.identity { object["identity"] = identity.description }
            print(jsonLine(object))
            return
        }
        print("log        \(directory)")
        print("identity   \(log.identity?.description ?? "none (empty log)")")
        print("state      \(log.verdict.name)\(log.cleanShutdown ? ", closed cleanly" : ", not closed cleanly")")
        print("writer     \(log.writerHoldsLock ? "a process holds the writer lock" : "no writer")")
        print("checkpoint \(checkpoint)")
        print("records    \(records) (LSN \(log.firstLSN) through \(log.nextLSN.rawValue - 1))")
        print(String(format: "payload    %d bytes, stored %d bytes (LZ4 ratio %.2f)", uncompressed, stored, ratio))
        if !log.lostLSNs.isEmpty {
            print("lost       LSN " + log.lostLSNs.map { "\($0.lowerBound)...\($0.upperBound)" }.joined(separator: ", ")
                  + " (taken out by salvage)")
        }
        if quarantined > 0 { print("quarantine \(quarantined) entr\(quarantined == 1 ? "y" : "ies") (walctl quarantine \(target.log))") }
        print("")
        let header = ["segment", "id", "first LSN", "last LSN", "frames", "records", "frame bytes", "file bytes"]
        var rows = [header]
        for s in log.segments {
            rows.append([s.name, "\(s.segmentID)", "\(s.firstLSN)", "\(s.endLSN.rawValue - 1)", "\(s.frames)",
                         "\(s.records)", "\(s.frameBytes)", "\(s.sizeBytes)"])
        }
        printTable(rows)
        switch log.verdict {
        case .clean: break
        case .tornTail(let cut): print("\ntorn tail (run `walctl recover` or open the log to cut it):\n" + cut.text)
        case .corruption(let cut):
            print("\ncorruption:\n" + cut.text)
            if let plan = log.salvagePlan { print("  " + plan.summary) }
        }
    }
}

/// Prints rows as aligned columns: text columns left, numeric columns right.
func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { c, cell -> String in
            let pad = String(repeating: " ", count: widths[c] - cell.count)
            return c == 0 ? cell + pad : pad + cell
        }
        print(cells.joined(separator: "  "))
    }
}
