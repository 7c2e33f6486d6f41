import Foundation
import Glibc
import Testing
import WALSimulation
@testable import DurableQueue

/// What a crash child reports, one line at a time.
protocol ChildLines: Sendable {
    mutating func parse(_ line: Substring)
}

/// What the child reported before it was killed, over one or more runs on the same store.
struct ChildReport: ChildLines {
    var published: [UInt64: String] = [:]
    var acked: Set<UInt64> = []
    /// Acks called whose return was not (yet) reported.
    var acking: Set<UInt64> = []
    /// Every delivery in the order reported: (id, count, redelivered).
    var deliveries: [(UInt64, Int, Bool)] = []
    var appended: [UInt64: String] = [:]
    var committed: UInt64 = 0
    var opened = 0

    mutating func parse(_ line: Substring) {
        let parts = line.split(separator: " ", maxSplits: 4).map(String.init)
        switch parts.first {
        case "O": opened += 1
        case "P": published[UInt64(parts[1])!] = parts[2]
        case "a": acking.insert(UInt64(parts[1])!)
        case "A":
            acked.insert(UInt64(parts[1])!)
            acking.remove(UInt64(parts[1])!)
        case "D": deliveries.append((UInt64(parts[1])!, Int(parts[2])!, parts[3] == "1"))
        case "S": appended[UInt64(parts[1])!] = parts[2]
        case "C": committed = max(committed, UInt64(parts[1])!)
        default: break
        }
    }
}

func productsDirectory() -> String { ToolRun.productsDirectory }

/// Runs the child on `directory` and kills it with SIGKILL once it reported `steps` lines after opening (or
/// `afterMicroseconds` after it started, which can land in its recovery).
func runQueueChild<Report: ChildLines>(directory: String, tag: String, extraArguments: [String] = [], steps: Int,
                                       afterMicroseconds: UInt32?, into report: inout Report) throws {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: productsDirectory() + "/QueueCrashChild")
    child.arguments = [directory, tag] + extraArguments
    child.environment = crashChildEnvironment()
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    let pid = child.processIdentifier
    if let afterMicroseconds {
        Thread.detachNewThread {
            usleep(afterMicroseconds)
            kill(pid, SIGKILL)
        }
    }
    // A child that stops making progress is killed after a deadline, and the test fails saying so, instead of
    // the run hanging until CI kills it.
    let watchdog = ChildWatchdog(pid: child.processIdentifier, seconds: 120)
    defer { if watchdog.disarm() { Issue.record("the child made no progress for 120 s and was killed") } }
    let fd = pipe.fileHandleForReading.fileDescriptor
    var pending: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    var seen = 0
    var killed = false
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        pending += chunk[0..<n]
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if line.hasPrefix("E ") { Issue.record("child: \(line)") }
            report.parse(Substring(line))
            seen += 1
            if seen >= steps && !killed {
                kill(pid, SIGKILL)
                killed = true
            }
        }
    }
    if !killed { kill(pid, SIGKILL) }
    child.waitUntilExit()
    if let failure = crashChildFailure(child) { Issue.record("\(failure)") }
}

/// Runs blocking work (reading a child's pipe, waiting for it) on a thread of its own, so that it does not
/// hold one of the few cooperative threads other tests run on.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread.detachNewThread { c.resume(with: Result { try body() }) }
    }
}

@Suite(.timeLimit(.minutes(10))) struct QueueCrashTests {
    /// `kill -9` a child under load (publishes, deliveries with acks, nacks and unacked ones, consumer
    /// cancels, stream appends, offset commits, checkpoints and reclamation), sometimes twice on one store, then
    /// check the recovered store against everything the child reported before it died.
    @Test func everyConfirmedPublishAckAndOffsetSurvivesKillDashNine() async throws {
        var generator = SplitMix64(seed: testSeed("QueueCrashTests"))
        var checkpointed = 0, truncated = 0
        for round in 0..<24 {
            let dir = TemporaryDirectory()
            var report = ChildReport()
            let runs = round % 3 == 0 ? 2 : 1
            for run in 0..<runs {
                let early = round % 4 == 3 && run == runs - 1
                let steps = round % 4 == 0 ? 15_000 : Int.random(in: 500...8000, using: &generator)
                let after = early ? UInt32.random(in: 1_000...80_000, using: &generator) : nil
                let path = dir.path
                report = try await offThePool { [report] in
                    var r = report
                    try runQueueChild(directory: path, tag: "r\(round)x\(run)", steps: steps,
                                      afterMicroseconds: after, into: &r)
                    return r
                }
            }
            let (checkpoint, firstLSN) = try await verify(dir.path, report, round: round)
            if checkpoint > 0 { checkpointed += 1 }
            if firstLSN > 1 { truncated += 1 }
        }
        // The runs are long enough to write checkpoints and reclaim segments while being killed (one round in
        // four surely: it runs 15,000 steps).
        #expect(checkpointed >= 12 && truncated >= 4, "checkpointed \(checkpointed), truncated \(truncated)")
    }

    /// Returns the checkpoint LSN the store opened with and the log's first LSN.
    private func verify(_ directory: String, _ report: ChildReport, round: Int) async throws -> (UInt64, UInt64) {
        let store = try await QueueStore.open(directory: directory)
        defer { try? store.close() }
        let opened = (store.openReport.checkpointLSN.rawValue, store.diskUsage.firstLSN.rawValue)
        // Drain the queue without acking: every message it still holds, with its delivery count.
        var recovered: [UInt64: Delivery] = [:]
        if let info = store.queueInfo("q"), info.ready > 0 {
            #expect(info.unacked == 0, "round \(round): nothing is out after a restart")
            let consumer = try store.consume(queue: "q", prefetch: info.ready)
            for d in try await take(info.ready, from: consumer) { recovered[d.messageID.rawValue] = d }
        }
        for (id, body) in report.published where !report.acked.contains(id) {
            guard let d = recovered[id] else {
                if report.acking.contains(id) { continue }  // its ack was in flight: it may have become durable
                Issue.record("round \(round): confirmed publish \(id) neither acked nor recovered")
                continue
            }
            #expect(String(decoding: d.message.body, as: UTF8.self) == body, "round \(round): body of \(id)")
        }
        for id in report.acked {
            #expect(recovered[id] == nil, "round \(round): message \(id) was acked but came back")
        }
        // Delivery counts only grow, redeliveries say so, and nothing is delivered after its ack returned.
        var lastCount: [UInt64: Int] = [:]
        for (id, count, redelivered) in report.deliveries {
            if let previous = lastCount[id] {
                #expect(count > previous, "round \(round): delivery count of \(id) went \(previous) -> \(count)")
            }
            #expect(redelivered == (count > 1), "round \(round): redelivered flag of \(id) at count \(count)")
            lastCount[id] = count
        }
        for (id, count) in lastCount {
            if let d = recovered[id] {
                #expect(d.deliveryCount > count && d.redelivered, "round \(round): recovered \(id) count \(d.deliveryCount) after \(count)")
            }
        }
        // The stream holds every confirmed append; the committed offset is not behind the last reported commit.
        if !report.appended.isEmpty {
            let records = try store.read(stream: "s", from: 0, limit: Int.max)
            let byOffset = Dictionary(uniqueKeysWithValues: records.map { ($0.offset.rawValue, $0.message.body) })
            let first = try #require(store.streamInfo("s")).firstOffset  // size retention removed the oldest
            for (offset, body) in report.appended where offset >= first.rawValue {
                #expect(byOffset[offset].map { String(decoding: $0, as: UTF8.self) } == body,
                        "round \(round): stream offset \(offset)")
            }
        }
        if report.committed > 0 {
            #expect((try store.committedOffset(stream: "s", group: "g")?.rawValue ?? 0) >= report.committed, "round \(round)")
        }
        return opened
    }
}
