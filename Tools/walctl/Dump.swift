import ArgumentParser
import DurableQueue
import Foundation
import LogFormat
import DurableLog

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print records (read-only).",
        discussion: """
            Stops at the log's intact end. If that end is a torn tail or damage, says so on stderr and exits 1 or 2 \
            (as verify). Records that salvage took out are shown as lost. A store's log shows what each record \
            does (--payload record) unless another payload is asked for.

            Example: walctl dump --from 100 --limit 20 /var/lib/app/store
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, jsonl }
    enum Payload: String, ExpressibleByArgument, CaseIterable { case text, hex, record, none }

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Option(help: "First LSN to print.") var from: UInt64 = 1
    @Option(help: "Last LSN to print.") var to: UInt64 = UInt64.max
    @Option(help: "Print at most this many records.") var limit: Int?
    @Option(help: "table or jsonl.") var format: Format = .table
    @Option(help: "Payload as text (printable ASCII, the rest as '.'), hex, record (a store record in words; the default for a store's log), or none.")
    var payload: Payload?
    @Option(help: "Shorten payloads to this many bytes (0: whole).") var width: Int = 64
    @Flag(help: "Also show each frame's header fields.") var raw = false

    func validate() throws {
        guard from >= 1, from <= to else { throw ValidationError("--from must be at least 1 and at most --to") }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
    }

    func run() throws {
        let target = try resolveTarget(directory)
        let payload = self.payload ?? (target.store != nil ? .record : .text)
        let log = try reporting { try LogInspector.inspect(directory: target.log) }
        var printed = 0
        var stoppedEarly = false
        var lastFrame: (String, Int)?
        try reporting {
            try LogInspector.forEachRecord(directory: target.log, from: LSN(from), through: LSN(to), onLost: { lost in
                if format == .jsonl {
                    print(jsonLine(["lost": [lost.lowerBound, lost.upperBound]]))
                } else {
                    print("\(lost.lowerBound)...\(lost.upperBound)\t-\tlost (taken out by salvage; see walctl quarantine)")
                }
            }) { lsn, record, frame, path, offset in
                if let limit, printed >= limit {
                    stoppedEarly = true
                    return false
                }
                let shown = width > 0 ? UnsafeRawBufferPointer(rebasing: record.prefix(width)) : record
                let body: String
                switch payload {
                case .text: body = printable(shown)
                case .hex: body = shown.map { String(format: "%02x", $0) }.joined()
                case .record: body = StoreRecordDescription.describe(record) ?? "(not a store record) " + printable(shown)
                case .none: body = ""
                }
                let file = String(path.split(separator: "/").last ?? "")
                if format == .jsonl {
                    var object: [String: Any] = ["lsn": lsn.rawValue, "bytes": record.count, "segment": file]
                    if payload != .none { object[payload == .record ? "record" : "payload"] = body }
                    if raw {
                        object["frame"] = ["offset": offset, "codec": "\(frame.codec)", "firstLSN": frame.firstLSN.rawValue,
                                           "records": frame.recordCount, "storedBytes": frame.storedBytes,
                                           "uncompressedBytes": frame.uncompressedBytes,
                                           "durableLSN": frame.durableLSN.rawValue, "leaderEpoch": frame.leaderEpoch]
                    }
                    print(jsonLine(object))
                } else {
                    if raw, lastFrame == nil || lastFrame! != (file, offset) {
                        print("frame \(file)@\(offset) codec=\(frame.codec) records=\(frame.recordCount) "
                              + "LSN \(frame.firstLSN)...\(frame.endLSN.rawValue - 1) stored=\(frame.storedBytes) "
                              + "uncompressed=\(frame.uncompressedBytes) durable=\(frame.durableLSN) epoch=\(frame.leaderEpoch)")
                        lastFrame = (file, offset)
                    }
                    print("\(lsn)\t\(record.count)\t\(body)")
                }
                printed += 1
                return true
            }
        }
        // A dump that reached the intact end of a damaged or torn log says where and why it stopped.
        guard !stoppedEarly, to >= log.nextLSN.rawValue else { return }
        switch log.verdict {
        case .clean: return
        case .tornTail(let cut), .corruption(let cut):
            FileHandle.standardError.write(Data(("walctl: stopped at LSN \(cut.firstLostLSN): \(log.verdict.name) at byte "
                                                 + "\(cut.offset) of \(cut.path) (\(cut.reason))\n").utf8))
            throw ExitCode(log.verdict.exitStatus)
        }
    }
}

/// Printable ASCII as itself, every other byte (control bytes, escapes, non-ASCII) as '.': a dump never
/// sends raw control bytes to a terminal.
func printable(_ bytes: UnsafeRawBufferPointer) -> String {
    String(decoding: bytes.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
}
