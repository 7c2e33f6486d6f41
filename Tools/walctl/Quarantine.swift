import ArgumentParser
import Foundation

struct QuarantineList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "List what salvage moved out of a log (read-only): each entry's manifest and files.",
        discussion: """
            Salvage never deletes: damaged spans it replaced and segments it cut are kept in the log's \\
            quarantine/ directory, one entry per salvage, each with a MANIFEST saying where its files came from.

            Example: walctl quarantine /var/lib/app/store
            """)

    @Argument(help: "The log directory, or a store directory (its log is in wal/).") var directory: String

    func run() throws {
        let target = try resolveTarget(directory)
        let entries = quarantineEntries(target.log)
        if entries.isEmpty {
            print("no quarantine entries in \(target.log)")
            return
        }
        for entry in entries {
            print("\(entry)")
            let manifest = (try? String(contentsOfFile: "\(entry)/MANIFEST", encoding: .utf8)) ?? "(no MANIFEST)\n"
            for line in manifest.split(separator: "\n") { print("  \(line)") }
        }
    }
}

/// The quarantine entry directories of a log, oldest first.
func quarantineEntries(_ log: String) -> [String] {
    let root = log + "/quarantine"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    return names.sorted().map { root + "/" + $0 }
}
