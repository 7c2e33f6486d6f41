// wal-torture: simulated power cuts under concurrent load, many seeds, with the durability oracle after
// each: every confirmed append must be present and byte-identical after recovery.
//
//   swift run -c release wal-torture [--seeds 10000] [--first-seed 1] [--streams 8] [--per-stream 30]
//                                    [--recovery-crashes] [--seed S]
//   swift run -c release wal-torture --cluster [--seeds 1000] [--steps 120] [--seed S]
import ArgumentParser
import ClusterSimulation
import Foundation
import WALSimulation
import DurableLog

@main
struct Torture: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-torture",
        abstract: "Simulated power loss at random crash points under concurrent appends; checks every confirm.",
        discussion: "Exits 1 if any confirmed record is lost or changed, printing the seed that replays it (--seed).")

    @Option(help: "How many seeds (one crash point each).") var seeds = 10_000
    @Option(help: "The first seed.") var firstSeed: UInt64 = 1
    @Option(help: "Replay exactly this seed (overrides --seeds and --first-seed).") var seed: UInt64?
    @Option(help: "Concurrent appenders.") var streams = 8
    @Option(help: "Appends per appender.") var perStream = 30
    @Flag(help: "Also cut the power a second time during recovery.") var recoveryCrashes = false
    @Option(help: "The first appender truncates the log after every this many appends (0: never).") var truncateEvery = 0
    @Option(help: "Records per append call (append(contentsOf:)); with --pending-bytes above 65536, groups span segments.")
    var batch = 1
    @Option(help: "The log's pendingBytesMax (default 32 KiB; segments are 64 KiB).") var pendingBytes = 32 << 10
    @Flag(help: "Replicated runs instead (three replicas, simulated disks, network and coordinator; ClusterTrial).")
    var cluster = false
    @Option(help: "With --cluster: steps per seed.") var steps = 120

    func validate() throws {
        guard seeds > 0, streams > 0, perStream > 0 else { throw ValidationError("counts must be positive") }
    }

    func run() async throws {
        if cluster { return try await runCluster() }
        let first = seed ?? firstSeed
        let count = seed == nil ? seeds : 1
        let budget = await trial(first, crashBefore: nil).operationsOfAnUninterruptedRun()
        var confirms = 0, tornTails = 0
        var failures: [(UInt64, String)] = []
        let start = Date()
        var lastReport = start
        let terminal = isatty(2) != 0
        for s in first..<(first + UInt64(count)) {
            var rng = SplitMix64(seed: s)
            let point = Int(rng.next() % UInt64(max(budget, 1) + 1))
            let outcome = await trial(s, crashBefore: point).run()
            confirms += outcome.confirmed
            if outcome.tornTailCut { tornTails += 1 }
            if let failure = outcome.failure {
                failures.append((s, "crash before operation \(point): \(failure)"))
                FileHandle.standardError.write(Data("\nFAIL seed \(s): \(failure) (replay: wal-torture --seed \(s))\n".utf8))
            }
            let now = Date()
            if now.timeIntervalSince(lastReport) >= (terminal ? 0.5 : 10) {
                lastReport = now
                let done = Int(s - first) + 1
                let line = String(format: "%d/%d seeds, %d confirms checked, %d torn tails cut, %d failures, %.0f s",
                                  done, count, confirms, tornTails, failures.count, now.timeIntervalSince(start))
                FileHandle.standardError.write(Data((terminal ? "\r" + line : line + "\n").utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print("seeds \(count) (from \(first)), crash points \(count) within \(budget) operations, "
              + "\(streams) appenders x \(perStream) appends, recovery crashes \(recoveryCrashes ? "on" : "off"), "
              + "truncation \(truncateEvery > 0 ? "every \(truncateEvery) appends" : "off"), batches of \(batch), "
              + "pending \(pendingBytes) bytes")
        print("confirms checked \(confirms), torn tails cut \(tornTails), failures \(failures.count), "
              + String(format: "%.1f s", Date().timeIntervalSince(start)))
        for (s, failure) in failures.prefix(20) { print("  seed \(s): \(failure)") }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    /// `--cluster`: many seeded replicated runs; every failure is printed with the seed that replays it.
    func runCluster() async throws {
        let first = seed ?? firstSeed
        let count = seed == nil ? seeds : 1
        var confirms = 0, elections = 0, powerLosses = 0, rejoinsAsNew = 0
        var failures: [(UInt64, String)] = []
        let start = Date()
        var lastReport = start
        for s in first..<(first + UInt64(count)) {
            var trial = ClusterTrial(seed: s)
            trial.steps = steps
            let outcome = await trial.run()
            confirms += outcome.confirmed
            elections += outcome.elections
            powerLosses += outcome.powerLosses
            rejoinsAsNew += outcome.rejoinsAsNew
            if let failure = outcome.failure {
                failures.append((s, failure))
                FileHandle.standardError.write(Data("FAIL seed \(s): \(failure) (replay: wal-torture --cluster --seed \(s))\n".utf8))
            }
            if seed != nil {
                // One seed replayed: its whole story, and a digest that every replay of it prints again.
                for event in outcome.trace { print("  \(event)") }
                print(String(format: "seed %llu: fingerprint %016llx", s, outcome.fingerprint))
            }
            if Date().timeIntervalSince(lastReport) >= 10 {
                lastReport = Date()
                FileHandle.standardError.write(Data("\(Int(s - first) + 1)/\(count) seeds, \(failures.count) failures\n".utf8))
            }
        }
        print("cluster seeds \(count) (from \(first)), \(steps) steps each: \(elections) elections, \(powerLosses) power "
              + "losses, \(rejoinsAsNew) rejoins as a new replica after a cut, \(confirms) confirms checked, failures \(failures.count), "
              + String(format: "%.1f s", Date().timeIntervalSince(start)))
        for (s, failure) in failures.prefix(20) { print("  seed \(s): \(failure)") }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    func trial(_ seed: UInt64, crashBefore: Int?) -> PowerLossTrial {
        var options = PowerLossTrial.defaultOptions
        options.pendingBytesMax = pendingBytes
        var t = PowerLossTrial(seed: seed, crashBefore: crashBefore, options: options)
        t.batch = batch
        t.streams = streams
        t.perStream = perStream
        t.crashDuringRecovery = recoveryCrashes
        t.truncateEvery = truncateEvery > 0 ? truncateEvery : nil
        return t
    }
}
