import ArgumentParser
import Foundation
import WriteAheadLog

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut a torn tail as opening the log would (and nothing else). Refuses corruption.",
        discussion: "Takes the writer's lock; fails if a process has the log open. Exit codes as for verify.")

    @Argument(help: "The log directory.") var directory: String
    @Flag(help: "Show what would be cut without changing anything.") var dryRun = false

    func run() throws {
        try requireLogDirectory(directory)
        if dryRun {
            let log = try reporting { try LogInspector.inspect(directory: directory) }
            switch log.verdict {
            case .clean: print("clean: nothing to cut")
            case .tornTail(let cut): print("would cut a torn tail:\n" + cut.text)
            case .corruption(let cut): print("corruption: recover will refuse this log\n" + cut.text)
            }
            throw ExitCode(log.verdict.exitStatus)
        }
        let report = try reporting { try LogInspector.recover(directory: directory) }
        if let cut = report.tornTail {
            print("cut a torn tail:\n" + cut.text)
        } else {
            print("clean: nothing to cut")
        }
        print("the log continues at LSN \(report.nextLSN)")
    }
}
