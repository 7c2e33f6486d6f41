// wal-bench: the benchmark suite. Durable publishes through the write-ahead log and through the queue layer,
// beside the disk's own ceiling and SQLite, measured in the same run on the same disk, interleaved, following
// ../shared/bench/WORKLOAD.md. `--help` lists the flags; Benchmarks/BENCHMARKS.md has the current figures.
import Foundation
import LogFormat
import Workload
import DurableLog

// The reopen scenario's child: fill a store and exit without closing it.
if CommandLine.arguments.count == 5, CommandLine.arguments[1] == "--fill", let bytes = Int(CommandLine.arguments[3]) {
    try await ReopenRun.fill(directory: CommandLine.arguments[2], bytes: bytes,
                             checkpoints: CommandLine.arguments[4] == "checkpoints")
}
// For profiling the reopen (`perf record -g wal-bench --open DIR` on a copy of a filled store): one open,
// its split printed, and an exit without closing, so that the copy can be opened the same way again.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--open" {
    try await ReopenRun.openOnce(directory: CommandLine.arguments[2])
}

// A probe: publish latency beside a checkpoint on a store with a deep queue (see CheckpointStall).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--checkpoint-stall" {
    try await CheckpointStall.run(directory: CommandLine.arguments[2])
}

// A probe: what checkpoints cost a store with a deep queue (see DeepQueue).
if (6...7).contains(CommandLine.arguments.count), CommandLine.arguments[1] == "--deep-queue",
   let queued = Int(CommandLine.arguments[3]), let seconds = Double(CommandLine.arguments[4]),
   let spacing = Int(CommandLine.arguments[5]) {
    let returned = CommandLine.arguments.count == 7 ? Int(CommandLine.arguments[6]) ?? 0 : 0
    try await DeepQueue.run(directory: CommandLine.arguments[2], queued: queued, seconds: seconds, spacing: spacing,
                            returned: returned)
}

struct Settings {
    var reps = 3
    var seconds = 1.0
    var messages = 200_000
    var concurrencies = [1, 16, 64, 256, 1024]
    var sizes = [128, 1024, 16384]
    var directory = FileManager.default.currentDirectoryPath + "/.bench-data"
    var jsonPath: String?
    var svgPath: String?
    /// Runs only the scenarios whose name contains this text.
    var only: String?
    /// Log size for the reopen-after-crash scenario, and bytes pushed through the reclamation scenario.
    var reopenBytes = 1 << 30
    var reclaimBytes = 256 << 20

    static let usage = """
        usage: wal-bench [options]
          --reps N            interleaved runs per scenario (3); medians are reported
          --seconds S         at most this long per run (1)
          --messages N        at most this many messages per run (200000; 4x at concurrency 1024)
          --concurrency LIST  the concurrency sweep, e.g. 1,16,64,256,1024
          --sizes LIST        the message-size sweep at concurrency 64, e.g. 128,1024,16384
          --only TEXT         only scenarios whose name contains TEXT (e.g. "queue", "sqlite", "c=64", "reopen");
                              several, separated by |, e.g. "wal c=64|reference c=64"
          --reopen-bytes N    log size for the reopen-after-crash scenario (1 GiB)
          --reclaim-bytes N   bytes through the stuck-message reclamation scenario (256 MiB)
          --json PATH         write every scenario, with machine facts, as JSON
          --svg PATH          write the charts (throughput vs concurrency, latency percentiles) as SVG
          --dir PATH          where the scenarios write (./.bench-data)
          --quick             one run each, 0.5 s, 30000 messages, 256 MiB reopen, 64 MiB reclamation
        """

    init(_ arguments: [String]) throws {
        var i = 1
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw BenchError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func list() throws -> [Int] {
            let items = try value().split(separator: ",").compactMap { Int($0) }
            guard !items.isEmpty else { throw BenchError("\(arguments[i - 1]) needs numbers, e.g. 1,64") }
            return items
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--reps": reps = max(1, Int(try value()) ?? reps)
            case "--seconds": seconds = Double(try value()) ?? seconds
            case "--messages": messages = Int(try value()) ?? messages
            case "--concurrency": concurrencies = try list()
            case "--sizes": sizes = try list()
            case "--dir": directory = try value()
            case "--json": jsonPath = try value()
            case "--svg": svgPath = try value()
            case "--only": only = try value()
            case "--reopen-bytes": reopenBytes = Int(try value()) ?? reopenBytes
            case "--reclaim-bytes": reclaimBytes = Int(try value()) ?? reclaimBytes
            case "--quick": reps = 1; seconds = 0.5; messages = 30_000; reopenBytes = 256 << 20; reclaimBytes = 64 << 20
            case "--help", "-h":
                say(Self.usage)
                exit(0)
            default: throw BenchError("unknown argument \(arguments[i]); see --help")
            }
            i += 1
        }
        guard sizes.allSatisfy({ $0 < 1024 || $0 % 1024 == 0 }) else {
            throw BenchError("--sizes: sizes above 1 KiB must be whole KiB")
        }
    }

    func wants(_ key: String) -> Bool {
        only.map { $0.split(separator: "|").contains { key.contains($0) } } ?? true
    }
}

/// Prints a line at once, also when the output is a pipe (progress must show while the suite runs).
func say(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

let settings = try Settings(CommandLine.arguments)
try FileManager.default.createDirectory(atPath: settings.directory, withIntermediateDirectories: true)
say("wal-bench: \(settings.reps) runs per scenario, up to \(settings.messages) messages or \(settings.seconds) s each, in \(settings.directory)")
say("CRC32C hardware: \(CRC32C.isHardwareAccelerated); cores: \(ProcessInfo.processInfo.activeProcessorCount); SQLite \(SQLiteRun.version)")
let events = MessageSet(.events)
let random = MessageSet(.random)
let sized = Dictionary(uniqueKeysWithValues: settings.sizes.filter { $0 != 1024 }.map { ($0, MessageSet(.events, size: $0)) })
let ceiling = try CeilingFile(directory: settings.directory, bytes: 256 << 20)
let growingCeiling = try CeilingFile(directory: settings.directory, bytes: 256 << 20, growing: true)
let allocatedCeiling = try CeilingFile(directory: settings.directory, bytes: 256 << 20, zeroed: false)
let suite = Suite(settings: settings, ceiling: ceiling)

let n = settings.messages, s = settings.seconds
for rep in 1...settings.reps {
    say("run \(rep) of \(settings.reps)")
    // The disk's ceiling: pre-zeroed and growing file, with LZ4 inline once.
    for b in [1, 16, 64, 256, 1024] {
        suite.bare("ceiling b=\(b)", batch: b, messages: events)
    }
    for b in [1, 64, 1024] {
        suite.bare("ceiling growing b=\(b)", batch: b, messages: events, file: growingCeiling)
        suite.bare("ceiling allocated b=\(b)", batch: b, messages: events, file: allocatedCeiling)
    }
    suite.bare("ceiling b=64 lz4 inline", batch: 64, lz4: true, messages: events)

    // The concurrency sweep: the log and the queue layer, awaited and windowed, and SQLite at the same
    // concurrency; each engine row also gets the ceiling at its own group size.
    for c in settings.concurrencies {
        let m = c >= 1024 ? 4 * n : n
        try await suite.reference("reference c=\(c)", ReferenceRun(concurrency: c, messagesMax: m, secondsMax: s), events)
        try await suite.engine("wal c=\(c)", EngineRun(concurrency: c, messagesMax: m, secondsMax: s), events)
        if [1, 64, 1024].contains(c) {
            // Three replicas in this process on this one disk (see ReplicatedRun), beside the single node above.
            try await suite.replicated("wal replicated x3 c=\(c)", ReplicatedRun(concurrency: c, messagesMax: m, secondsMax: s), events)
        }
        try await suite.engine("wal windowed c=\(c)", EngineRun(shape: .windowed, concurrency: c, messagesMax: m, secondsMax: s), events)
        try await suite.queue("queue c=\(c)", QueueRun(concurrency: c, messagesMax: m, secondsMax: s), events)
        try await suite.queue("queue windowed c=\(c)", QueueRun(shape: .windowed, concurrency: c, messagesMax: m, secondsMax: s), events)
        if [1, 64, 1024].contains(c) {
            // The replicated store (see ReplicatedQueueRun): publishes on the leader, and on a follower.
            try await suite.replicatedQueue("queue replicated x3 c=\(c)",
                                            ReplicatedQueueRun(concurrency: c, messagesMax: m, secondsMax: s), events)
            try await suite.replicatedQueue("queue replicated x3 via follower c=\(c)",
                                            ReplicatedQueueRun(concurrency: c, viaFollower: true, messagesMax: m, secondsMax: s), events)
        }
        try await suite.sqlite("sqlite c=\(c)", SQLiteRun(shape: c == 1 ? .perMessage : .batched, concurrency: c,
                                                         messagesMax: m, secondsMax: s), events)
    }
    try await suite.engine("wal blocking c=1", EngineRun(shape: .blocking, concurrency: 1, messagesMax: n, secondsMax: s), events)

    // Payload, codec and size at concurrency 64.
    for c in settings.concurrencies where c >= 64 {
        let m = c >= 1024 ? 4 * n : n
        try await suite.engine("wal c=\(c) codec=none", EngineRun(concurrency: c, codec: .none, messagesMax: m, secondsMax: s), events)
        try await suite.engine("wal c=\(c) steady", EngineRun(concurrency: c, steadyState: true, messagesMax: m, secondsMax: s), events)
    }
    try await suite.queue("queue c=64 codec=none", QueueRun(concurrency: 64, codec: .none, messagesMax: n, secondsMax: s), events)
    try await suite.engine("wal c=64 random", EngineRun(concurrency: 64, messagesMax: n, secondsMax: s), random)
    try await suite.queue("queue c=64 random", QueueRun(concurrency: 64, messagesMax: n, secondsMax: s), random)
    for (size, set) in sized.sorted(by: { $0.key < $1.key }) {
        let m = size > 1024 ? n / 4 : n
        try await suite.engine("wal c=64\(set.label)", EngineRun(concurrency: 64, messagesMax: m, secondsMax: s), set)
        try await suite.queue("queue c=64\(set.label)", QueueRun(concurrency: 64, messagesMax: m, secondsMax: s), set)
        try await suite.sqlite("sqlite c=64\(set.label)", SQLiteRun(shape: .batched, concurrency: 64, messagesMax: m, secondsMax: s), set)
    }
    try await suite.engine("wal c=64 UNSAFE no-sync", EngineRun(concurrency: 64, durability: .unsafeNoSync, messagesMax: n, secondsMax: s), events)
    // Targets 2 and 3's yardsticks: the reference committer's loop with LZ4 inline, and without syncs.
    try await suite.reference("reference c=64 lz4", ReferenceRun(concurrency: 64, lz4: true, messagesMax: n, secondsMax: s), events)
    try await suite.reference("reference c=64 UNSAFE no-sync", ReferenceRun(concurrency: 64, sync: false, messagesMax: n, secondsMax: s), events)
    try await suite.reference("reference c=64 lz4 UNSAFE no-sync", ReferenceRun(concurrency: 64, sync: false, lz4: true, messagesMax: n, secondsMax: s), events)

    // Consuming, and the exactly-once tools.
    try await suite.queue("queue end-to-end c=64 consumers=1", QueueRun(shape: .endToEnd, concurrency: 64, consumers: 1, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue end-to-end c=64 consumers=4", QueueRun(shape: .endToEnd, concurrency: 64, consumers: 4, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue consume+ack c=64", QueueRun(shape: .drain, concurrency: 64, messagesMax: n / 2, secondsMax: s), events)
    try await suite.queue("queue consume+ack c=64 consumers=4", QueueRun(shape: .drain, concurrency: 64, consumers: 4, messagesMax: n / 2, secondsMax: s), events)
    try await suite.queue("queue consume+ack c=256 consumers=4", QueueRun(shape: .drain, concurrency: 256, consumers: 4, messagesMax: n / 2, secondsMax: s), events)
    try await suite.queue("queue tx c=1 size=1", QueueRun(shape: .transactions, concurrency: 1, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue tx c=64 size=1", QueueRun(shape: .transactions, concurrency: 64, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue tx c=64 size=10", QueueRun(shape: .transactions, concurrency: 64, transactionSize: 10, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue idempotent c=64", QueueRun(shape: .idempotent, concurrency: 64, messagesMax: n, secondsMax: s), events)
    try await suite.queue("queue half c=64", QueueRun(shape: .halfMessages, concurrency: 64, messagesMax: n, secondsMax: s), events)
}

var reopens: [ReopenRun.Result] = []
if settings.wants("reopen") {
    say("reopen after a crash with \(settings.reopenBytes >> 20) MiB of log (filling in a child process, then timing open)")
    for checkpoints in [true, false] {
        let r = try await ReopenRun.run(directory: settings.directory, bytes: settings.reopenBytes, checkpoints: checkpoints)
        reopens.append(r)
        say(String(format: "  reopen %@: %.1f ms for %d MiB of log, %d messages queued; checkpoint LSN %llu, replayed %d records (%.1f MiB), log scanned %.1f MiB",
                   checkpoints ? "with checkpoints" : "without checkpoint", r.openMilliseconds, r.logBytes >> 20, r.queued,
                   r.checkpointLSN, r.replayedRecords, Double(r.replayedBytes) / 1048576, Double(r.logBytesScanned) / 1048576))
        say(String(format: "    checkpoint load %.1f ms beside log open %.1f ms: %.1f ms; replay %.1f ms, the rest (session record, sync) %.1f ms; verify %.0f MB/s",
                   r.checkpointMilliseconds, r.logOpenMilliseconds, r.loadMilliseconds, r.replayMilliseconds,
                   r.openMilliseconds - r.loadMilliseconds - r.replayMilliseconds, r.verifyMegabytesPerSecond))
    }
}

var reclaim: ReclaimRun.Result?
if settings.wants("reclaim") {
    say("reclamation with one stuck message: \(settings.reclaimBytes >> 20) MiB through a queue, 4 MiB segments")
    let r = try await ReclaimRun.run(messages: events, directory: settings.directory, totalBytes: settings.reclaimBytes)
    reclaim = r
    say(String(format: "  log at most %.1f MiB, at the end %.1f MiB, for %d MiB written; the stuck message %@",
               Double(r.maxLogBytes) / 1048576, Double(r.finalLogBytes) / 1048576, settings.reclaimBytes >> 20,
               r.stuckMessageSurvived ? "is still there, unacked" : "IS MISSING"))
}

let report = suite.report()
let targets = Targets(suite: suite, report: report, reopens: reopens)
targets.print()

if let path = settings.jsonPath {
    try JSONOutput(settings: settings, suite: suite, report: report, targets: targets, reopens: reopens,
                   reclaim: reclaim).write(to: path)
    say("\nwrote \(path)")
}
if let path = settings.svgPath {
    try Chart(suite: suite, report: report, concurrencies: settings.concurrencies).svg()
        .write(toFile: path, atomically: true, encoding: .utf8)
    say("wrote \(path)")
}
