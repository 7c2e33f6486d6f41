import ArgumentParser
import Foundation
import DurableLog

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Records per frame, LZ4 ratio, segment ages and the write rate they imply (read-only).",
        discussion: """
            The rate is records per second between the oldest and the newest segment's last write (file \\
            modification times): an estimate of recent throughput, not a measurement.

            Example: walctl stats --json /var/lib/app/store
            """)

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        let target = try resolveTarget(directory)
        let log = try reporting { try LogInspector.inspect(directory: target.log) }
        let now = Date()
        let modified: [Date] = log.segments.map {
            ((try? FileManager.default.attributesOfItem(atPath: $0.path))?[.modificationDate] as? Date) ?? now
        }
        let records = log.segments.reduce(UInt64(0)) { $0 + $1.records }
        let frames = log.segments.reduce(0) { $0 + $1.frames }
        let stored = log.segments.reduce(0) { $0 + $1.storedPayloadBytes }
        let uncompressed = log.segments.reduce(0) { $0 + $1.uncompressedPayloadBytes }
        let onDisk = log.segments.reduce(0) { $0 + $1.sizeBytes }
        let spares = ((try? FileManager.default.contentsOfDirectory(atPath: target.log)) ?? []).filter { $0.hasPrefix("spare-") }.count
        // Records written after the first segment's last write, over the time to the newest segment's.
        var rate: Double?
        if modified.count >= 2, let first = modified.first, let lastWrite = modified.last, lastWrite > first {
            rate = Double(records - log.segments[0].records) / lastWrite.timeIntervalSince(first)
        }
        let perFrame = frames == 0 ? 0 : Double(records) / Double(frames)
        let ratio = stored == 0 ? 1 : Double(uncompressed) / Double(stored)
        if json {
            var object: [String: Any] = [
                "directory": target.log, "records": records, "frames": frames,
                "recordsPerFrame": (perFrame * 100).rounded() / 100, "compressionRatio": (ratio * 1000).rounded() / 1000,
                "payloadBytes": uncompressed, "storedBytes": stored, "bytesOnDisk": onDisk, "spareSegments": spares,
                "segments": zip(log.segments, modified).map { s, m in
                    ["name": s.name, "records": s.records, "frames": s.frames,
                     "ageSeconds": Int(now.timeIntervalSince(m))] as [String: Any]
                },
            ]
            if let rate { object["recordsPerSecond"] = Int(rate) }
            print(jsonLine(object))
            return
        }
        print("log               \(target.log)")
        print("records           \(records) in \(frames) frame(s): \(String(format: "%.2f", perFrame)) per frame")
        print(String(format: "payload           %d bytes, stored %d (LZ4 ratio %.2f), %d bytes on disk, %d spare segment(s)",
                     uncompressed, stored, ratio, onDisk, spares))
        print("write rate        " + (rate.map { String(format: "about %.0f records/s (from segment times)", $0) }
                                      ?? "unknown (one segment)"))
        print("")
        var rows = [["segment", "records", "frames", "records/frame", "last write"]]
        for (s, m) in zip(log.segments, modified) {
            let per = s.frames == 0 ? 0 : Double(s.records) / Double(s.frames)
            rows.append([s.name, "\(s.records)", "\(s.frames)", String(format: "%.1f", per),
                         "\(Int(now.timeIntervalSince(m))) s ago"])
        }
        printTable(rows)
    }
}
