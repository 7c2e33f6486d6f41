import ArgumentParser
import DurableLog
import Foundation
import LogFormat

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the logs of one replication group's replicas, frame by frame (read-only).",
        discussion: """
            Replicas hold their leader's frames at the same place, byte for byte. Prints each replica's extent \
            and the committed LSN (the highest watermark in any frame), then either that every frame two \
            replicas both hold is the same, or the first frame where two differ. A replica that ends earlier \
            (an empty directory too: a replica that lost its disk) is behind, not different. Exit 0 no \
            difference; 1 a difference past the committed LSN (an uncommitted tail the replica cuts when it \
            rejoins its leader); 2 a difference at or below it (confirmed records differ: a bug or damage); 74 \
            a directory that cannot be read or holds another log.

            Example: walctl compare /data/node1/wal /data/node2/wal /data/node3/wal
            """)

    @Argument(help: "Two or more log directories (or store directories) of one group's replicas.") var directories: [String]
    @Flag(help: "Print one JSON object instead of text.") var json = false

    /// A directory without segment files or a store's `wal/`: a replica that lost its disk, compared as empty.
    static func holdsNothing(_ path: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return false }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        return !names.contains { $0.hasSuffix(".wal") || $0 == "wal" }
    }

    func run() throws {
        let logs = try directories.map { path in try Self.holdsNothing(path) ? path : resolveTarget(path).log }
        let comparison = try reporting { try LogComparison.compare(logs) }
        let status: Int32 = comparison.difference.map { $0.withinCommitted ? 2 : 1 } ?? 0
        if json {
            var object: [String: Any] = [
                "committedLSN": comparison.committedLSN.rawValue, "agreeBefore": comparison.agreeBefore.rawValue,
                "replicas": comparison.replicas.map { r -> [String: Any] in
                    ["directory": r.directory, "firstLSN": r.firstLSN.rawValue, "endLSN": r.endLSN.rawValue,
                     "committedLSN": r.committedLSN.rawValue, "state": r.verdict.name]
                },
            ]
            if let d = comparison.difference {
                object["difference"] = [
                    "lsn": d.lsn.rawValue, "withinCommitted": d.withinCommitted,
                    "first": ["directory": directories[d.replicas.0], "frame": d.frames.0],
                    "second": ["directory": directories[d.replicas.1], "frame": d.frames.1],
                ] as [String: Any]
            }
            print(jsonLine(object))
            throw ExitCode(status)
        }
        for (given, replica) in zip(directories, comparison.replicas) {
            var line = "\(given): LSN \(replica.firstLSN)..<\(replica.endLSN), committed watermark \(replica.committedLSN)"
            if replica.verdict != .clean { line += " (\(replica.verdict.name): only its intact frames are compared)" }
            if replica.endLSN <= comparison.committedLSN { line += "; lacks committed records from \(replica.endLSN) (behind)" }
            print(line)
        }
        guard let d = comparison.difference else {
            print("same: every frame two replicas both hold is identical, byte for byte, through LSN "
                  + "\(comparison.agreeBefore.rawValue - 1) (committed LSN \(comparison.committedLSN))")
            throw ExitCode(status)
        }
        print("DIFFER at LSN \(d.lsn) (" + (d.withinCommitted
            ? "at or below the committed LSN \(comparison.committedLSN): confirmed records differ, a bug or damage)"
            : "past the committed LSN \(comparison.committedLSN): an uncommitted tail, cut when the replica rejoins)"))
        print("  \(directories[d.replicas.0]): \(d.frames.0)")
        print("  \(directories[d.replicas.1]): \(d.frames.1)")
        throw ExitCode(status)
    }
}
