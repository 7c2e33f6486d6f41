import ArgumentParser
import Foundation
import WriteAheadLog

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every frame (CRC, header, LSN continuity, segment sequence) and decompress every payload.",
        discussion: "Exit 0 clean, 1 torn tail (what recovery would cut), 2 corruption of confirmed data.")

    @Argument(help: "The log directory.") var directory: String
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        try requireLogDirectory(directory)
        let start = Date()
        let progress = ProgressLine()
        let log = try reporting {
            try LogInspector.inspect(directory: directory, verifyPayloads: true, progress: progress.update)
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(start)
        let bytes = log.segments.reduce(0) { $0 + $1.sizeBytes }
        let frames = log.segments.reduce(0) { $0 + $1.frames }
        let verdict = log.verdict
        if json {
            var object: [String: Any] = [
                "directory": directory, "state": verdict.name, "segments": log.segments.count, "frames": frames,
                "records": log.nextLSN.rawValue - log.firstLSN.rawValue, "bytes": bytes, "seconds": seconds,
            ]
            switch verdict {
            case .clean: break
            case .tornTail(let cut), .corruption(let cut): object["finding"] = cut.json
            }
            print(jsonLine(object))
        } else {
            print("\(verdict.name): \(log.segments.count) segment(s), \(frames) frame(s), "
                  + "LSN \(log.firstLSN) through \(log.nextLSN.rawValue - 1)"
                  + String(format: ", %.1f MB in %.2f s", Double(bytes) / 1e6, seconds))
            switch verdict {
            case .clean: break
            case .tornTail(let cut): print(cut.text)
            case .corruption(let cut):
                print(cut.text)
                print("  do not open this log for writing; copy it aside, restore the damaged records from a "
                      + "replica or backup, or open it in salvage mode to cut it before LSN \(cut.firstLostLSN)")
            }
        }
        throw ExitCode(verdict.exitStatus)
    }
}
