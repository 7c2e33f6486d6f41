import Foundation

/// The scenarios' measurements in run order, and the rows the report, the JSON and the chart are made of.
@MainActor final class Suite {
    let settings: Settings
    let ceiling: CeilingFile
    private(set) var runs: [String: [Measurement]] = [:]
    private(set) var order: [String] = []

    init(settings: Settings, ceiling: CeilingFile) {
        self.settings = settings
        self.ceiling = ceiling
    }

    /// One row of the report: a scenario's median run and how it stands against the ceiling and SQLite.
    struct Row: Codable {
        var name: String
        var summary: Summary
        /// The ceiling at this row's records per sync (median of the per-run measurements), msgs/s.
        var ceilingAtGroupPerSecond: Double?
        var ratioToCeiling: Double?
        /// SQLite at this row's concurrency and message size (its median), msgs/s.
        var sqlitePerSecond: Double?
        var ratioToSQLite: Double?
        /// The reference committer (one flusher thread, one sync at a time) at this row's concurrency, msgs/s.
        var referencePerSecond: Double?
        var ratioToReference: Double?
    }

    func bare(_ key: String, batch: Int, lz4: Bool = false, messages: MessageSet, file: CeilingFile? = nil) {
        guard settings.wants(key) else { return }
        let before = startRSS()
        var m = (file ?? ceiling).run(messages: messages, batch: batch, lz4: lz4, messagesMax: settings.messages * max(1, batch / 64),
                                      secondsMax: settings.seconds)
        noteRSS(&m, before)
        keep(key, m)
    }

    func engine(_ key: String, _ run: EngineRun, _ messages: MessageSet) async throws {
        // A row without syncs has no ceiling at its group size (its "records per sync" are per write).
        try await measure(key, messages, withCeiling: run.durability != .unsafeNoSync) {
            try await run.run(messages: messages, directory: $0)
        }
    }

    func replicated(_ key: String, _ run: ReplicatedRun, _ messages: MessageSet) async throws {
        try await measure(key, messages, withCeiling: false) { try await run.run(messages: messages, directory: $0) }
    }

    func replicatedQueue(_ key: String, _ run: ReplicatedQueueRun, _ messages: MessageSet) async throws {
        try await measure(key, messages, withCeiling: false) { try await run.run(messages: messages, directory: $0) }
    }

    func queue(_ key: String, _ run: QueueRun, _ messages: MessageSet) async throws {
        // A drain's records (checkouts, acks) each cover many messages: no ceiling to compare with.
        try await measure(key, messages, withCeiling: run.shape != .drain) {
            try await run.run(messages: messages, directory: $0)
        }
    }

    func reference(_ key: String, _ run: ReferenceRun, _ messages: MessageSet) async throws {
        let (fd, bytes) = (ceiling.fd, ceiling.bytes)
        try await measure(key, messages, withCeiling: run.sync) { _ in
            try await run.run(messages: messages, fd: fd, fileBytes: bytes)
        }
    }

    func sqlite(_ key: String, _ run: SQLiteRun, _ messages: MessageSet) async throws {
        try await measure(key, messages, withCeiling: false) { try await run.run(messages: messages, directory: $0) }
    }

    /// Runs one scenario (if `--only` wants it) with its peak RSS, and the ceiling at its group size.
    private func measure(_ key: String, _ messages: MessageSet, withCeiling: Bool,
                         _ body: (_ directory: String) async throws -> Measurement) async throws {
        guard settings.wants(key) else { return }
        let before = startRSS()
        var m = try await body(settings.directory)
        noteRSS(&m, before)
        if withCeiling { addCeiling(&m, messages) }
        keep(key, m)
    }

    private func startRSS() -> Int {
        resetPeakRSS()
        return currentRSS()
    }

    private func noteRSS(_ m: inout Measurement, _ before: Int) {
        m.peakRSSBytes = peakRSS()
        m.rssGrowthBytes = max(0, m.peakRSSBytes - before)
    }

    /// The ceiling at the group size this run achieved, measured right after it on the same disk (half the
    /// run's time).
    private func addCeiling(_ m: inout Measurement, _ messages: MessageSet) {
        guard m.recordsPerSync > 0 else { return }
        let batch = max(1, Int(m.recordsPerSync.rounded()))
        let c = ceiling.run(messages: messages, batch: batch, lz4: false, messagesMax: settings.messages * max(1, batch / 64),
                            secondsMax: settings.seconds / 2)
        m.ceilingAtGroupPerSecond = c.messagesPerSecond
    }

    private func keep(_ key: String, _ m: Measurement) {
        if runs[key] == nil { order.append(key) }
        runs[key, default: []].append(m)
        say(String(format: "  %@ %10.0f msgs/s  p50 %8.1f us  p99 %9.1f us  %6.1f rec/sync  %6.0f B/rec%@",
                   padded(key, 40) as NSString, m.messagesPerSecond, m.p50Microseconds, m.p99Microseconds, m.recordsPerSync,
                   m.bytesWrittenPerRecord, m.ceilingAtGroupPerSecond.map { String(format: "  ceiling at group %.0f", $0) } ?? ""))
    }

    /// Medians per scenario with their ratio columns, printed as the table; returned for the JSON and chart.
    func report() -> [Row] {
        let summaries = Dictionary(uniqueKeysWithValues: order.map { ($0, Summary(runs[$0]!)) })
        var rows: [Row] = []
        for key in order {
            let summary = summaries[key]!
            let m = summary.median
            var row = Row(name: key, summary: summary)
            let ceilings = runs[key]!.compactMap(\.ceilingAtGroupPerSecond).sorted()
            if !ceilings.isEmpty {
                row.ceilingAtGroupPerSecond = ceilings[ceilings.count / 2]
                row.ratioToCeiling = m.messagesPerSecond / ceilings[ceilings.count / 2]
            }
            // A row without syncs is compared with the ceiling in the targets only, not with durable peers.
            let durable = !key.contains("UNSAFE")
            if durable, !key.hasPrefix("sqlite"), !key.hasPrefix("ceiling"),
               let peer = summaries[Self.sqliteKey(concurrency: m.concurrency, messageBytes: m.messageBytes)] {
                row.sqlitePerSecond = peer.median.messagesPerSecond
                row.ratioToSQLite = m.messagesPerSecond / peer.median.messagesPerSecond
            }
            if durable, key.hasPrefix("wal") || key.hasPrefix("queue"), m.messageBytes == 1024,
               let peer = summaries["reference c=\(m.concurrency)"] {
                row.referencePerSecond = peer.median.messagesPerSecond
                row.ratioToReference = m.messagesPerSecond / peer.median.messagesPerSecond
            }
            rows.append(row)
        }
        say("\nMedians of \(settings.reps) runs (msgs/s min-max); 1 KiB events unless the name says otherwise. x ceiling: the")
        say("ceiling (pwrite + fdatasync, pre-zeroed file) at the row's own records per sync; x SQLite: SQLite at the row's concurrency.")
        say("RSS MB: the process's peak (it holds the suite's message buffers throughout); +MB: how far the run raised it.")
        say(padded("scenario", 40) + "    msgs/s (min-max)            MB/s    p50 us    p99 us   p999 us  rec/sync  B/rec  cpu s/M  RSS MB  +MB   x ceil  x SQLite    x ref")
        for row in rows {
            let m = row.summary.median
            say(String(format: "%@ %9.0f (%8.0f-%8.0f) %7.1f %9.1f %9.1f %9.1f %9.1f %6.0f %8.2f %7.0f %4.0f %8@ %9@ %8@",
                       padded(row.name, 40) as NSString, m.messagesPerSecond, row.summary.minimumPerSecond, row.summary.maximumPerSecond,
                       m.megabytesPerSecond, m.p50Microseconds, m.p99Microseconds, m.p999Microseconds, m.recordsPerSync,
                       m.bytesWrittenPerRecord, m.cpuSecondsPerMillion, Double(m.peakRSSBytes) / 1048576,
                       Double(m.rssGrowthBytes) / 1048576,
                       padded(Self.times(row.ratioToCeiling), 8, right: true) as NSString,
                       padded(Self.times(row.ratioToSQLite), 9, right: true) as NSString,
                       padded(Self.times(row.ratioToReference), 8, right: true) as NSString))
        }
        return rows
    }

    static func sqliteKey(concurrency: Int, messageBytes: Int) -> String {
        let size = messageBytes == 1024 ? "" : " " + (messageBytes < 1024 ? "\(messageBytes)B" : "\(messageBytes >> 10)KiB")
        return "sqlite c=\(concurrency)\(size)"
    }

    static func times(_ ratio: Double?) -> String { ratio.map { String(format: "%.2fx", $0) } ?? "-" }
}

/// Issue 12's targets, each as measured in this run (ratios between rows of the same run).
@MainActor struct Targets {
    struct Target: Codable {
        var what: String
        var measured: Double
        var target: String
        var met: Bool
    }

    var list: [Target] = []

    init(suite: Suite, report: [Suite.Row], reopens: [ReopenRun.Result]) {
        let rows = Dictionary(uniqueKeysWithValues: report.map { ($0.name, $0) })
        func median(_ key: String) -> Measurement? { rows[key]?.summary.median }
        func add(_ what: String, _ value: Double?, _ target: String, _ met: (Double) -> Bool) {
            guard let value, value.isFinite else { return }
            list.append(Target(what: what, measured: value, target: target, met: met(value)))
        }
        func ratio(_ a: Measurement?, _ b: Measurement?, _ key: KeyPath<Measurement, Double>) -> Double? {
            guard let a, let b, b[keyPath: key] > 0 else { return nil }
            return a[keyPath: key] / b[keyPath: key]
        }
        // 1. The log against the reference committer and the ceiling at its own group size.
        for c in [64, 256, 1024] {
            add("1. wal c=\(c) codec=none / reference c=\(c)", rows["wal c=\(c) codec=none"]?.ratioToReference, ">= 1.0") { $0 >= 1.0 }
            add("1. wal c=\(c) (lz4) / reference c=\(c)", rows["wal c=\(c)"]?.ratioToReference, ">= 0.9") { $0 >= 0.9 }
            add("1. wal c=\(c) / ceiling at its group size", rows["wal c=\(c)"]?.ratioToCeiling, ">= 0.9") { $0 >= 0.9 }
        }
        // 2. The pipeline without the disk outruns the disk.
        add("2. wal c=64 UNSAFE no-sync / ceiling b=64", ratio(median("wal c=64 UNSAFE no-sync"), median("ceiling b=64"), \.messagesPerSecond),
            ">= 1.2") { $0 >= 1.2 }
        // Not a target: what the reference committer's loop reaches the same way, so a miss above is the
        // engine's and not the machine's when this one is met.
        add("2. (yardstick) reference c=64 lz4 UNSAFE no-sync / ceiling b=64",
            ratio(median("reference c=64 lz4 UNSAFE no-sync"), median("ceiling b=64"), \.messagesPerSecond), ">= 1.2") { $0 >= 1.2 }
        // 3. CPU per message.
        let lz4Inline = median("ceiling b=64 lz4 inline")
        add("3. wal c=64 CPU s/M / ceiling b=64 lz4 inline", ratio(median("wal c=64"), lz4Inline, \.cpuSecondsPerMillion), "<= 2") { $0 <= 2 }
        add("3. queue c=64 CPU s/M / ceiling b=64 lz4 inline", ratio(median("queue c=64"), lz4Inline, \.cpuSecondsPerMillion), "<= 2.5") { $0 <= 2.5 }
        // Not a target: the reference committer's loop with LZ4 and syncs, 64 awaited tasks, measured the same way.
        add("3. (yardstick) reference c=64 lz4 CPU s/M / ceiling b=64 lz4 inline",
            ratio(median("reference c=64 lz4"), lz4Inline, \.cpuSecondsPerMillion), "<= 2") { $0 <= 2 }
        // 4. The queue layer on the log, and against SQLite.
        for c in suite.settings.concurrencies {
            add("4. queue c=\(c) / wal c=\(c)", ratio(median("queue c=\(c)"), median("wal c=\(c)"), \.messagesPerSecond), ">= 0.9") { $0 >= 0.9 }
            add("4. queue windowed c=\(c) / wal windowed c=\(c)",
                ratio(median("queue windowed c=\(c)"), median("wal windowed c=\(c)"), \.messagesPerSecond), ">= 0.9") { $0 >= 0.9 }
        }
        add("4. queue c=64 / SQLite c=64", rows["queue c=64"]?.ratioToSQLite, ">= 1.8") { $0 >= 1.8 }
        add("4. queue c=1024 / SQLite c=1024", rows["queue c=1024"]?.ratioToSQLite, ">= 3") { $0 >= 3 }
        // 5. Consuming a backlog.
        add("5. queue consume+ack c=64 / queue c=64 publish",
            ratio(median("queue consume+ack c=64"), median("queue c=64"), \.messagesPerSecond), ">= 2") { $0 >= 2 }
        // 6. Concurrency 1.
        let ceiling1 = median("ceiling b=1")
        for key in ["wal c=1", "wal blocking c=1", "queue c=1"] {
            add("6. \(key) msgs/s / ceiling b=1", ratio(median(key), ceiling1, \.messagesPerSecond), ">= 0.9") { $0 >= 0.9 }
            add("6. \(key) p50 / ceiling b=1 p50 (one write + fdatasync)", ratio(median(key), ceiling1, \.p50Microseconds),
                "<= 1.3") { $0 <= 1.3 }
        }
        // 7. Reopen after a crash.
        if let r = reopens.first(where: \.checkpoints) {
            add("7. reopen, 1 GiB of log with a checkpoint: open ms minus tail replay ms",
                r.openMilliseconds - r.replayMilliseconds, "<= 10") { $0 <= 10 }
            if r.replayMilliseconds > 0 {
                add("7. reopen: tail replay, records/s", Double(r.replayedRecords) / (r.replayMilliseconds / 1000),
                    ">= 1,000,000") { $0 >= 1_000_000 }
            }
        }
        // 8. No stalls.
        for key in ["wal c=64", "queue c=64"] {
            add("8. \(key) p999 / p99", median(key).map { $0.p999Microseconds / max($0.p99Microseconds, 1) }, "<= 5") { $0 <= 5 }
        }
        // 9. LZ4 pays for itself.
        add("9. LZ4 on events: bytes per record, none / lz4 (wal c=64)",
            ratio(median("wal c=64 codec=none"), median("wal c=64"), \.bytesWrittenPerRecord), ">= 2.5") { $0 >= 2.5 }
        add("9. LZ4 on events: msgs/s, lz4 / none (wal c=64)",
            ratio(median("wal c=64"), median("wal c=64 codec=none"), \.messagesPerSecond), ">= 0.9") { $0 >= 0.9 }
    }

    func print() {
        say("\nTargets (issue 12), measured in this run")
        for t in list {
            let value = t.measured >= 1000 ? String(format: "%.0f", t.measured) : String(format: "%.2f", t.measured)
            say("  " + padded(t.what, 78) + padded(value, 10, right: true) + "  target " + padded(t.target, 13)
                + (t.met ? "met" : "MISSED"))
        }
    }
}

/// Everything as JSON: machine facts, settings, one object per scenario, targets, reopen and reclamation.
struct JSONOutput: Codable {
    var machine: [String: String]
    var settings: [String: String]
    var scenarios: [Suite.Row]
    var targets: [Targets.Target]
    var reopen: [ReopenRun.Result]
    var reclaim: ReclaimRun.Result?

    @MainActor init(settings: Settings, suite: Suite, report: [Suite.Row], targets: Targets, reopens: [ReopenRun.Result],
                    reclaim: ReclaimRun.Result?) {
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: uts.release) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        machine = ["cores": String(ProcessInfo.processInfo.activeProcessorCount), "kernel": kernel, "cpu": cpu,
                   "memoryBytes": String(ProcessInfo.processInfo.physicalMemory), "sqlite": SQLiteRun.version,
                   "date": ISO8601DateFormatter().string(from: Date()), "directory": settings.directory]
        self.settings = ["reps": String(settings.reps), "seconds": String(settings.seconds), "messages": String(settings.messages),
                         "concurrency": settings.concurrencies.map(String.init).joined(separator: ","),
                         "sizes": settings.sizes.map(String.init).joined(separator: ",")]
        scenarios = report
        self.targets = targets.list
        reopen = reopens
        self.reclaim = reclaim
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// `text` padded with spaces to `width` (on the left with `right`); String(format:)'s `%-40@` does not pad
/// on Linux.
func padded(_ text: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return right ? fill + text : text + fill
}
