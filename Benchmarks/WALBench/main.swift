// wal-bench: durable appends through the write-ahead log beside the disk's own ceiling, measured in the
// same run on the same disk, following ../shared/bench/WORKLOAD.md.
//
//   swift run -c release wal-bench [--reps 3] [--seconds 3] [--messages 100000] [--dir PATH] [--json PATH] [--quick]
import Foundation
import LogFormat
import Workload
import WriteAheadLog

// The reopen scenario's child: fill a store and exit without closing it.
if CommandLine.arguments.count == 5, CommandLine.arguments[1] == "--fill", let bytes = Int(CommandLine.arguments[3]) {
    try await ReopenRun.fill(directory: CommandLine.arguments[2], bytes: bytes,
                             checkpoints: CommandLine.arguments[4] == "checkpoints")
}

struct Settings {
    var reps = 3
    var seconds = 3.0
    var messages = 100_000
    var directory = FileManager.default.currentDirectoryPath + "/.bench-data"
    var jsonPath: String?
    /// Runs only the scenarios whose name contains this text.
    var only: String?
    /// Log size for the reopen-after-crash scenario.
    var reopenBytes = 1 << 30

    init(_ arguments: [String]) throws {
        var i = 1
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw BenchError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--reps": reps = Int(try value()) ?? reps
            case "--seconds": seconds = Double(try value()) ?? seconds
            case "--messages": messages = Int(try value()) ?? messages
            case "--dir": directory = try value()
            case "--json": jsonPath = try value()
            case "--only": only = try value()
            case "--reopen-bytes": reopenBytes = Int(try value()) ?? reopenBytes
            case "--quick": reps = 1; seconds = 1; messages = 30_000; reopenBytes = 256 << 20
            case "--help", "-h":
                say("usage: wal-bench [--reps N] [--seconds S] [--messages N] [--dir PATH] [--json PATH] [--only TEXT] [--reopen-bytes N] [--quick]")
                exit(0)
            default: throw BenchError("unknown argument \(arguments[i]); see --help")
            }
            i += 1
        }
    }
}

/// Prints a line at once, also when the output is a pipe (progress must show while the suite runs).
func say(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

let settings = try Settings(CommandLine.arguments)
try FileManager.default.createDirectory(atPath: settings.directory, withIntermediateDirectories: true)
say("wal-bench: \(settings.reps) runs per scenario, up to \(settings.messages) messages or \(settings.seconds) s each, in \(settings.directory)")
say("CRC32C hardware: \(CRC32C.isHardwareAccelerated); cores: \(ProcessInfo.processInfo.activeProcessorCount)")
let events = Payloads.messages(.events, count: 100_000)
let random = Payloads.messages(.random, count: 20_000)
let ceiling = try CeilingFile(directory: settings.directory, bytes: 256 << 20)

var runs: [String: [Measurement]] = [:]
var order: [String] = []
@MainActor func keep(_ key: String, _ m: Measurement) {
    if runs[key] == nil { order.append(key) }
    runs[key, default: []].append(m)
    say(String(format: "  %-34@ %10.0f msgs/s  p50 %7.1f us  p99 %8.1f us  %6.1f rec/sync  %6.0f B/rec  sync %6.1f us",
                 key as NSString, m.messagesPerSecond, m.p50Microseconds, m.p99Microseconds, m.recordsPerSync,
                 m.bytesWrittenPerRecord, m.syncMicrosecondsMean))
}
@MainActor func engine(_ key: String, _ run: EngineRun, payload: [UInt8] = events) async throws {
    if let only = settings.only, !key.contains(only) { return }
    keep(key, try await run.run(messages: payload, directory: settings.directory))
}
@MainActor func queue(_ key: String, _ run: QueueRun, payload: [UInt8] = events) async throws {
    if let only = settings.only, !key.contains(only) { return }
    keep(key, try await run.run(messages: payload, directory: settings.directory))
}
@MainActor func bare(_ key: String, batch: Int, lz4: Bool = false, payload: [UInt8] = events) {
    if let only = settings.only, !key.contains(only) { return }
    keep(key, ceiling.run(messages: payload, batch: batch, lz4: lz4, messagesMax: settings.messages, secondsMax: settings.seconds))
}

let n = settings.messages, s = settings.seconds
for rep in 1...settings.reps {
    say("run \(rep) of \(settings.reps)")
    bare("ceiling b=1", batch: 1)
    try await engine("wal c=1", EngineRun(concurrency: 1, messagesMax: n, secondsMax: s))
    try await engine("wal blocking c=1", EngineRun(shape: .blocking, concurrency: 1, messagesMax: n, secondsMax: s))
    bare("ceiling b=64", batch: 64)
    bare("ceiling b=64 lz4 inline", batch: 64, lz4: true)
    for k in [1, 2, 4] {
        try await engine("wal c=64 syncs=\(k)", EngineRun(concurrency: 64, syncsInFlight: k, messagesMax: n, secondsMax: s))
        guard let last = runs["wal c=64 syncs=\(k)"]?.last else { continue }
        let group = Int(last.recordsPerSync.rounded())
        bare("ceiling at c=64 syncs=\(k) group", batch: max(1, group))
    }
    try await queue("queue c=1", QueueRun(concurrency: 1, messagesMax: n, secondsMax: s))
    try await queue("queue c=64", QueueRun(concurrency: 64, messagesMax: n, secondsMax: s))
    try await queue("queue windowed c=64", QueueRun(shape: .windowed, concurrency: 64, messagesMax: n, secondsMax: s))
    try await queue("queue end-to-end c=64 consumers=1", QueueRun(shape: .endToEnd, concurrency: 64, consumers: 1, messagesMax: n, secondsMax: s))
    try await queue("queue end-to-end c=64 consumers=4", QueueRun(shape: .endToEnd, concurrency: 64, consumers: 4, messagesMax: n, secondsMax: s))
    try await queue("queue tx c=1 size=1", QueueRun(shape: .transactions, concurrency: 1, messagesMax: n, secondsMax: s))
    try await queue("queue tx c=64 size=1", QueueRun(shape: .transactions, concurrency: 64, messagesMax: n, secondsMax: s))
    try await queue("queue tx c=64 size=10", QueueRun(shape: .transactions, concurrency: 64, transactionSize: 10, messagesMax: n, secondsMax: s))
    try await queue("queue idempotent c=64", QueueRun(shape: .idempotent, concurrency: 64, messagesMax: n, secondsMax: s))
    try await queue("queue half c=64", QueueRun(shape: .halfMessages, concurrency: 64, messagesMax: n, secondsMax: s))
    try await engine("wal c=64 codec=none", EngineRun(concurrency: 64, codec: .none, messagesMax: n, secondsMax: s))
    try await engine("wal c=64 random payload", EngineRun(concurrency: 64, messagesMax: n, secondsMax: s), payload: random)
    try await engine("wal blocking c=64", EngineRun(shape: .blocking, concurrency: 64, messagesMax: n, secondsMax: s))
    try await engine("wal windowed c=64", EngineRun(shape: .windowed, concurrency: 64, messagesMax: n, secondsMax: s))
    try await engine("wal c=64 UNSAFE no-sync", EngineRun(concurrency: 64, durability: .unsafeNoSync, messagesMax: n, secondsMax: s))
    try await engine("wal c=256", EngineRun(concurrency: 256, messagesMax: n, secondsMax: s))
    try await engine("wal c=1024", EngineRun(concurrency: 1024, messagesMax: 4 * n, secondsMax: s))
    bare("ceiling b=1024", batch: 1024)
}

var reopens: [ReopenRun.Result] = []
if settings.only.map({ "reopen".contains($0) || $0.contains("reopen") }) ?? true {
    say("reopen after a crash with \(settings.reopenBytes >> 20) MiB of log (filling in a child process, then timing open)")
    for checkpoints in [true, false] {
        let r = try await ReopenRun.run(directory: settings.directory, bytes: settings.reopenBytes, checkpoints: checkpoints)
        reopens.append(r)
        say(String(format: "  reopen %@: %.1f ms for %d MiB of log, %d messages queued; checkpoint LSN %llu, replayed %d records (%.1f MiB), log scanned %.1f MiB",
                   checkpoints ? "with checkpoints" : "without checkpoint", r.openMilliseconds, r.logBytes >> 20, r.queued,
                   r.checkpointLSN, r.replayedRecords, Double(r.replayedBytes) / 1048576, Double(r.logBytesScanned) / 1048576))
        say(String(format: "    checkpoint load %.1f ms, log open %.1f ms, replay %.1f ms, the rest (session record, sync) %.1f ms",
                   r.checkpointMilliseconds, r.logOpenMilliseconds, r.replayMilliseconds,
                   r.openMilliseconds - r.checkpointMilliseconds - r.logOpenMilliseconds - r.replayMilliseconds))
    }
}

let summaries = order.filter { runs[$0] != nil }.map { ($0, Summary(runs[$0]!)) }
let byKey = Dictionary(uniqueKeysWithValues: summaries)

say("\nMedians of \(settings.reps) runs (msgs/s min-max), 1 KiB events unless noted")
say("scenario                              msgs/s (min-max)              MB/s   p50 us   p99 us  p999 us  rec/sync  B/rec  cpu s/M")
for (key, summary) in summaries {
    let m = summary.median
    say(String(format: "%-34@ %9.0f (%7.0f-%7.0f) %7.1f %8.1f %8.1f %8.1f %9.1f %6.0f %8.2f",
                 key as NSString, m.messagesPerSecond, summary.minimumPerSecond, summary.maximumPerSecond,
                 m.megabytesPerSecond, m.p50Microseconds, m.p99Microseconds, m.p999Microseconds, m.recordsPerSync,
                 m.bytesWrittenPerRecord, m.cpuSecondsPerMillion))
}

@MainActor func ratio(_ a: String, _ b: String, _ key: KeyPath<Measurement, Double> = \.messagesPerSecond) -> Double? {
    guard let x = byKey[a]?.median[keyPath: key], let y = byKey[b]?.median[keyPath: key], y > 0 else { return nil }
    return x / y
}
var ratios: [String: Double] = [:]
@MainActor func report(_ label: String, _ value: Double?) {
    guard let value else { return }
    ratios[label] = value
    say(String(format: "  %-72@ %6.2fx", label as NSString, value))
}
say("\nRatios (same run, same disk)")
report("c=1 msgs/s / ceiling b=1", ratio("wal c=1", "ceiling b=1"))
report("c=1 p50 confirm latency / ceiling b=1 p50 (write+fdatasync)", ratio("wal c=1", "ceiling b=1", \.p50Microseconds))
report("blocking c=1 msgs/s / ceiling b=1", ratio("wal blocking c=1", "ceiling b=1"))
report("blocking c=1 p50 confirm latency / ceiling b=1 p50", ratio("wal blocking c=1", "ceiling b=1", \.p50Microseconds))
for k in [1, 2, 4] {
    report("c=64 syncs=\(k) msgs/s / ceiling at its own group size", ratio("wal c=64 syncs=\(k)", "ceiling at c=64 syncs=\(k) group"))
    report("c=64 syncs=\(k) msgs/s / ceiling b=64", ratio("wal c=64 syncs=\(k)", "ceiling b=64"))
}
report("c=64 lz4 msgs/s / c=64 codec=none msgs/s", ratio("wal c=64 syncs=2", "wal c=64 codec=none"))
report("c=64 codec=none bytes/record / lz4 bytes/record", ratio("wal c=64 codec=none", "wal c=64 syncs=2", \.bytesWrittenPerRecord))
report("c=1024 msgs/s / ceiling b=1024", ratio("wal c=1024", "ceiling b=1024"))
report("queue c=1 msgs/s / wal c=1 (target 0.8)", ratio("queue c=1", "wal c=1"))
report("queue c=64 msgs/s / wal c=64 syncs=2 (target 0.8)", ratio("queue c=64", "wal c=64 syncs=2"))
report("queue windowed c=64 msgs/s / wal windowed c=64 (target 0.8)", ratio("queue windowed c=64", "wal windowed c=64"))
report("end-to-end c=64 1 consumer / queue c=64 publish (target 0.5)", ratio("queue end-to-end c=64 consumers=1", "queue c=64"))
report("end-to-end c=64 4 consumers / queue c=64 publish (target 0.5)", ratio("queue end-to-end c=64 consumers=4", "queue c=64"))
report("tx c=1 size=1 commits/s / queue c=1 publishes/s", ratio("queue tx c=1 size=1", "queue c=1"))
report("tx c=1 size=1 p50 commit latency / queue c=1 p50 publish latency", ratio("queue tx c=1 size=1", "queue c=1", \.p50Microseconds))
report("tx c=64 size=1 commits/s / queue c=64 publishes/s", ratio("queue tx c=64 size=1", "queue c=64"))
report("tx c=64 size=10 msgs/s / queue c=64 msgs/s", ratio("queue tx c=64 size=10", "queue c=64"))
report("idempotent c=64 msgs/s / queue c=64 msgs/s", ratio("queue idempotent c=64", "queue c=64"))
report("half (prepare+commit) c=64 msgs/s / queue c=64 msgs/s", ratio("queue half c=64", "queue c=64"))

if let path = settings.jsonPath {
    struct Output: Codable {
        var machine: [String: String]
        var settings: [String: String]
        var scenarios: [String: Summary]
        var ratios: [String: Double]
        var reopen: [ReopenRun.Result]
    }
    var uts = utsname()
    uname(&uts)
    let kernel = withUnsafeBytes(of: uts.release) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
    let output = Output(
        machine: ["cores": String(ProcessInfo.processInfo.activeProcessorCount), "kernel": kernel,
                  "memoryBytes": String(ProcessInfo.processInfo.physicalMemory), "date": ISO8601DateFormatter().string(from: Date())],
        settings: ["reps": String(settings.reps), "seconds": String(settings.seconds), "messages": String(settings.messages)],
        scenarios: byKey, ratios: ratios, reopen: reopens)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(output).write(to: URL(fileURLWithPath: path))
    say("\nwrote \(path)")
}
