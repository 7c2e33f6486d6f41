import ArgumentParser
import DurableQueue
import Foundation
import LogFormat
import DurableLog

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the log's last records, and with --follow new ones as they become durable (read-only).",
        discussion: """
            Safe beside a live writer: files are opened read-only and no lock is taken. Only records known to be \\
            durable are printed (a later frame's watermark covers them, the writer rolled past their segment, or \\
            the log was closed), so the newest group shows once the next one is written. A store's records are \\
            described in words unless another payload is asked for.

            Example: walctl tail --follow /var/lib/app/store
            """)

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String
    @Option(help: "Start this many records before the end.") var last: UInt64 = 10
    @Option(help: "Start at this LSN instead.") var from: UInt64?
    @Flag(help: "Keep printing new records until interrupted.") var follow = false
    @Option(help: "How often to look for new records, in milliseconds (with --follow).") var intervalMs: Int = 200
    @Option(help: "Payload as text, hex, record or none (default: record for a store's log, else text).")
    var payload: Dump.Payload?
    @Option(help: "Shorten payloads to this many bytes (0: whole).") var width: Int = 64

    func validate() throws {
        guard intervalMs >= 10 else { throw ValidationError("--interval-ms must be at least 10") }
    }

    func run() throws {
        let target = try resolveTarget(directory)
        let payload = self.payload ?? (target.store != nil ? .record : .text)
        let start: LSN? = try from.map { LSN($0) } ?? {
            let end = try reporting { try LogInspector.inspect(directory: target.log) }.nextLSN.rawValue
            return LSN(max(1, end > last ? end - last : 1))
        }()
        let follower = try reporting { try LogFollower(directory: target.log, from: start) }
        repeat {
            _ = try reporting {
                try follower.poll { lsn, record in
                    let shown = width > 0 ? UnsafeRawBufferPointer(rebasing: record.prefix(width)) : record
                    let body: String = switch payload {
                    case .text: printable(shown)
                    case .hex: shown.map { String(format: "%02x", $0) }.joined()
                    case .record: StoreRecordDescription.describe(record) ?? "(not a store record) " + printable(shown)
                    case .none: ""
                    }
                    // Unbuffered (one write(2) per record), so a pipe sees each record as it comes.
                    FileHandle.standardOutput.write(Data("\(lsn)\t\(record.count)\t\(body)\n".utf8))
                }
            }
            if follow { usleep(useconds_t(intervalMs) * 1000) }
        } while follow
    }
}
