import ArgumentParser
import Foundation
import LogFormat
import DurableLog

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
        subcommands: [Info.self, Stats.self, Verify.self, Dump.self, Tail.self, Recover.self, Queues.self, QuarantineList.self,
                      Compare.self])
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

/// What a directory given to walctl is: a log directory, or a store directory (`checkpoint` plus its log in
/// `wal/`). A log directory inside a store knows its store too.
struct Target {
    var log: String
    var store: String?
}

/// Resolves `path` to the log it names, refusing (exit 74) a path that is not a directory or holds no log.
/// A store directory is accepted for its log, with a note on stderr saying so.
func resolveTarget(_ path: String) throws -> Target {
    let fm = FileManager.default
    func isDirectory(_ p: String) -> Bool {
        var d: ObjCBool = false
        return fm.fileExists(atPath: p, isDirectory: &d) && d.boolValue
    }
    guard isDirectory(path) else {
        FileHandle.standardError.write(Data("walctl: \(path) is not a directory; give the log's directory (or a store's)\n".utf8))
        throw ExitCode(ExitStatus.ioError)
    }
    let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
    if names.contains(where: isSegmentName) {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let parent = URL(fileURLWithPath: trimmed).deletingLastPathComponent().path
        let inStore = URL(fileURLWithPath: trimmed).lastPathComponent == "wal"
            && fm.fileExists(atPath: parent + "/checkpoint")
        return Target(log: path, store: inStore ? parent : nil)
    }
    if isDirectory(path + "/wal") {
        FileHandle.standardError.write(Data("walctl: \(path) is a store directory; reading its log \(path)/wal\n".utf8))
        return Target(log: path + "/wal", store: path)
    }
    FileHandle.standardError.write(Data(("walctl: \(path) holds no log: no segment files (*.wal) and no wal/ "
                                         + "directory\n").utf8))
    throw ExitCode(ExitStatus.ioError)
}

/// A segment file's name: a 20-digit first LSN and `.wal`.
private func isSegmentName(_ name: String) -> Bool {
    name.count == 24 && name.hasSuffix(".wal") && name.prefix(20).allSatisfy(\.isNumber)
}

func jsonLine(_ object: [String: Any]) -> String {
    // Every value walctl puts in its objects is a string, number, bool, null, array or object of those, or a
    // typed number (an LSN, a message id, an offset), which goes out as its number.
    guard let data = try? JSONSerialization.data(withJSONObject: plainJSON(object), options: [.sortedKeys]) else {
        preconditionFailure("walctl built a JSON object with a value JSON cannot hold: \(object)")
    }
    return String(decoding: data, as: UTF8.self)
}

private func plainJSON(_ value: Any) -> Any {
    switch value {
    case let object as [String: Any]: return object.mapValues(plainJSON)
    case let array as [Any]: return array.map(plainJSON)
    case let typed as any RawRepresentable: return plainJSON(typed.rawValue)
    default: return value
    }
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
            "file": path, "offset": offset, "cause": cause.rawValue, "reason": reason, "framesAfter": framesDropped,
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
