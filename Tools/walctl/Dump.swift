import ArgumentParser
import Foundation
import LogFormat
import WriteAheadLog

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records (read-only).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, jsonl }
    enum Payload: String, ExpressibleByArgument, CaseIterable { case text, hex, none }

    @Argument(help: "The log directory.") var directory: String
    @Option(help: "First LSN to print.") var from: UInt64 = 1
    @Option(help: "Last LSN to print.") var to: UInt64 = UInt64.max
    @Option(help: "Print at most this many records.") var limit: Int?
    @Option(help: "table or jsonl.") var format: Format = .table
    @Option(help: "Payload as text, hex, or none.") var payload: Payload = .text
    @Option(help: "Shorten payloads to this many bytes (0: whole).") var width: Int = 64
    @Flag(help: "Also show each frame's header fields.") var raw = false

    func validate() throws {
        guard from >= 1, from <= to else { throw ValidationError("--from must be at least 1 and at most --to") }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
    }

    func run() throws {
        try requireLogDirectory(directory)
        var printed = 0
        var lastFrame: (String, Int)?
        try reporting {
            try LogInspector.forEachRecord(directory: directory, from: LSN(from), through: LSN(to)) {
                lsn, record, frame, path, offset in
                if let limit, printed >= limit { return false }
                let shown = width > 0 ? UnsafeRawBufferPointer(rebasing: record.prefix(width)) : record
                let body: String
                switch payload {
                case .text: body = String(decoding: shown, as: UTF8.self).map { $0.isASCII && !$0.isNewline ? String($0) : "." }.joined()
                case .hex: body = shown.map { String(format: "%02x", $0) }.joined()
                case .none: body = ""
                }
                let file = String(path.split(separator: "/").last ?? "")
                if format == .jsonl {
                    var object: [String: Any] = ["lsn": lsn.rawValue, "bytes": record.count, "segment": file]
                    if payload != .none { object["payload"] = body }
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
    }
}
