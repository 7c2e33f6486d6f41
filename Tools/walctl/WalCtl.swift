import ArgumentParser
import Foundation
import LogFormat
import WriteAheadLog

/// walctl: inspect, verify, dump and recover a write-ahead log directory. Every subcommand but `recover`
/// is read-only: it opens files read-only and never takes the writer's lock.
@main
struct WalCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "walctl",
        abstract: "Inspect, verify, dump and recover a write-ahead log directory; list a store's queues.",
        discussion: """
            Exit codes: 0 clean; 1 torn tail (recoverable: what recovery would cut); 2 corruption of \
            confirmed data; 64 bad arguments; 74 an I/O error or a directory that holds no log.
            """,
        subcommands: [Info.self, Verify.self, Dump.self, Recover.self, Queues.self])
}

enum ExitStatus {
    static let clean: Int32 = 0
    static let tornTail: Int32 = 1
    static let corruption: Int32 = 2
    static let ioError: Int32 = 74
}

/// Runs `body`, turning a `WALError` into a message on stderr and exit code 74 (or 2 for corruption).
func reporting<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let error as WALError {
        FileHandle.standardError.write(Data("walctl: \(error)\n".utf8))
        throw ExitCode(error.code == .corruption ? ExitStatus.corruption : ExitStatus.ioError)
    }
}

func requireLogDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        FileHandle.standardError.write(Data("walctl: \(path) is not a directory; give the log's directory\n".utf8))
        throw ExitCode(ExitStatus.ioError)
    }
}

func jsonLine(_ object: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

extension LogInspection.Verdict {
    var name: String {
        switch self {
        case .clean: return "clean"
        case .tornTail: return "torn-tail"
        case .corruption: return "corruption"
        }
    }

    var exitStatus: Int32 {
        switch self {
        case .clean: return ExitStatus.clean
        case .tornTail: return ExitStatus.tornTail
        case .corruption: return ExitStatus.corruption
        }
    }
}

extension RecoveryReport.Cut {
    var json: [String: Any] {
        var object: [String: Any] = [
            "file": path, "offset": offset, "reason": reason, "framesAfter": framesDropped,
            "segmentsAfter": segmentsRemoved, "firstLostLSN": firstLostLSN,
        ]
        if let d = droppedLSNs { object["intactLSNsAfter"] = [d.lowerBound, d.upperBound] }
        if isCorruption { object["confirmedLSNsAffected"] = [firstLostLSN, laterWatermark] }
        return object
    }

    var text: String {
        var lines = ["  at \(path) byte \(offset): \(reason)"]
        if isCorruption {
            lines.append("  confirmed records LSN \(firstLostLSN) through at least \(laterWatermark) are damaged "
                         + "(a later intact frame has watermark \(laterWatermark))")
        } else {
            lines.append("  nothing after it was confirmed: recovery cuts the log at LSN \(firstLostLSN)")
        }
        if framesDropped > 0 || segmentsRemoved > 0 {
            let lsns = droppedLSNs.map { ", LSN \($0.lowerBound)...\($0.upperBound)" } ?? ""
            lines.append("  after it: \(framesDropped) intact frame(s)\(lsns), \(segmentsRemoved) later segment(s)")
        }
        return lines.joined(separator: "\n")
    }
}

/// A progress line on stderr, shown only on a terminal and only once a command has run for a second.
final class ProgressLine {
    private let start = Date()
    private let enabled = isatty(2) != 0
    private var shown = false

    func update(_ phase: String, _ done: Int, _ total: Int) {
        guard enabled, Date().timeIntervalSince(start) > 1 else { return }
        shown = true
        FileHandle.standardError.write(Data("\r\(phase) segment \(done) of \(total)   ".utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
