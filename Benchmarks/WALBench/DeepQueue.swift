import DurableQueue
import Foundation
import Synchronization
import Workload

/// A probe, not a suite scenario: what checkpoints cost a store whose queue is deep
/// (`wal-bench --deep-queue DIR QUEUED SECONDS SPACING`). Publishes QUEUED messages of 128 random bytes that
/// nobody consumes (windowed), then awaited publishes at concurrency 64 for SECONDS, with checkpoints as
/// `StoreOptions` makes them (`checkpointSpacingFactor` = SPACING); prints each phase's rate, the
/// checkpoints written and their bytes against the log's, and the peak resident memory of each phase.
/// With RETURNED (`--deep-queue DIR QUEUED SECONDS SPACING RETURNED`), that many messages are published first,
/// amid 500,000 published to another queue and acked, and once the deep queue is filled behind them they are
/// taken by a consumer that is then cancelled (as one that crashed with its prefetch out): returned, from
/// mostly dead segments, they are what the checkpoint's copy-forward moves. That mode takes no automatic
/// checkpoint (the probe's own is the first), so that nothing moves them before.
enum DeepQueue {
    static func run(directory: String, queued: Int, seconds: Double, spacing: Int, returned: Int = 0) async throws -> Never {
        try? FileManager.default.removeItem(atPath: directory)
        var options = StoreOptions()
        options.checkpointSpacingFactor = spacing
        if returned > 0 { options.checkpointEveryBytes = .max }
        let store = try await QueueStore.open(directory: directory, options: options)
        try await store.declareQueue("deep")
        let random = Payloads.messages(.random, count: 1024)
        let bodies = (0..<8192).map { Message(body: Array(random[($0 * 128)..<($0 * 128 + 128)])) }

        if returned > 0 { try await publishAmidChurn(returned, to: store, bodies: bodies) }

        let tally = CheckpointTally()
        let watching = Task { await tally.watch(store) }

        resetPeakMemory()
        let fillStart = monotonicNanoseconds()
        let logBefore = store.logCounters.bytesWritten
        let publisher = store.publisher()
        for i in 0..<queued { try await publisher.publish(to: "deep", bodies[i % bodies.count]) }
        guard try await publisher.waitForConfirms() else { throw BenchError("a publish was refused") }
        let fillSeconds = Double(monotonicNanoseconds() - fillStart) / 1e9
        let fill = tally.take(logBytes: store.logCounters.bytesWritten - logBefore)
        let fillPeak = peakMemoryBytes()
        if returned > 0 { try await takeAndReturn(returned, from: store) }

        // One checkpoint alone, with nothing else running: its time and the memory it takes.
        try await Task.sleep(for: .milliseconds(300))  // a maintenance pass's checkpoint, if one is running, ends
        let residentBefore = residentMemoryBytes()
        resetPeakMemory()
        let checkpointStart = monotonicNanoseconds()
        try await store.reclaim()
        let checkpointMilliseconds = Double(monotonicNanoseconds() - checkpointStart) / 1e6
        let checkpointPeak = peakMemoryBytes() - residentBefore
        let checkpointSize = store.diskUsage.checkpointBytes
        _ = tally.take(logBytes: 0)

        resetPeakMemory()
        let steadyBefore = store.logCounters.bytesWritten
        let shared = SharedProgress()
        let start = monotonicNanoseconds()
        let latencies = try await runAwaitedProducers(concurrency: 64, messagesMax: Int(seconds * 500_000),
                                                      deadline: start + UInt64(seconds * 1e9), shared: shared) { _, i in
            try await store.publish(to: "deep", bodies[i % bodies.count])
        }
        let steadySeconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        let steady = tally.take(logBytes: store.logCounters.bytesWritten - steadyBefore)
        let steadyPeak = peakMemoryBytes()
        watching.cancel()

        print("spacing factor \(spacing), \(queued) queued messages of 128 bytes")
        print(String(format: "fill:   %.0f msgs/s; %@; peak RSS %.0f MB", Double(queued) / fillSeconds, fill,
                     Double(fillPeak) / 1e6))
        print(String(format: "one checkpoint: %.1f MB in %.0f ms, peak RSS %.1f MB above the %.0f MB before",
                     Double(checkpointSize) / 1e6, checkpointMilliseconds, Double(checkpointPeak) / 1e6,
                     Double(residentBefore) / 1e6))
        print(String(format: "steady: %.0f msgs/s awaited c=64, p50 %.0f us, p99 %.0f us, max %.0f us; %@; peak RSS %.0f MB",
                     Double(latencies.totalCount) / steadySeconds, Double(latencies.valueAtPercentile(50)) / 1e3,
                     Double(latencies.valueAtPercentile(99)) / 1e3, Double(latencies.max) / 1e3, steady,
                     Double(steadyPeak) / 1e6))
        exit(0)  // no close: the probe's store is thrown away
    }

    /// `count` messages published to "deep", amid 500,000 published to "churn" and acked.
    private static func publishAmidChurn(_ count: Int, to store: QueueStore, bodies: [Message]) async throws {
        try await store.declareQueue("churn")
        let publisher = store.publisher()
        for i in 0..<count { try await publisher.publish(to: "deep", bodies[i % bodies.count]) }
        let churn = try store.consume(queue: "churn", prefetch: 1_000)
        var deliveries = churn.deliveries.makeAsyncIterator()
        for _ in 0..<500 {
            for i in 0..<1_000 { try await publisher.publish(to: "churn", bodies[i % bodies.count]) }
            var last: DeliveryTag?
            for _ in 0..<1_000 { last = try await deliveries.next()?.tag }
            guard let last else { throw BenchError("the churn consumer ended") }
            try await churn.ack(last, multiple: true)
        }
        churn.cancel()
        guard try await publisher.waitForConfirms() else { throw BenchError("a publish was refused") }
    }

    /// The first `count` messages of "deep" checked out and returned (the consumer cancelled).
    private static func takeAndReturn(_ count: Int, from store: QueueStore) async throws {
        let taker = try store.consume(queue: "deep", prefetch: count)
        var taken = taker.deliveries.makeAsyncIterator()
        for _ in 0..<count { _ = try await taken.next() }
        taker.cancel()
        while (store.queueInfo("deep")?.unacked ?? 0) > 0 { try await Task.sleep(for: .milliseconds(10)) }
    }

    /// Counts the checkpoints a store writes and their bytes, from its disk usage (looked at every 2 ms: a
    /// checkpoint of a deep queue takes far longer than that to write).
    final class CheckpointTally: Sendable {
        private let state = Mutex<(lastLSN: UInt64, count: Int, bytes: Int)>((0, 0, 0))

        func watch(_ store: QueueStore) async {
            while !Task.isCancelled {
                let usage = store.diskUsage
                state.withLock { s in
                    if usage.checkpointLSN.rawValue > s.lastLSN {
                        s = (usage.checkpointLSN.rawValue, s.count + 1, s.bytes + usage.checkpointBytes)
                    }
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }

        /// What was counted since the last call, against `logBytes` written by the log meanwhile.
        func take(logBytes: UInt64) -> String {
            let (count, bytes) = state.withLock { s in
                defer { s.count = 0; s.bytes = 0 }
                return (s.count, s.bytes)
            }
            return String(format: "%d checkpoints, %.1f MB (%.2fx the log's %.1f MB)", count, Double(bytes) / 1e6,
                          Double(bytes) / Double(max(logBytes, 1)), Double(logBytes) / 1e6)
        }
    }

    /// Resets the kernel's high-water mark of this process's resident memory (`VmHWM`).
    private static func resetPeakMemory() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// `VmHWM` of /proc/self/status: the most resident memory since the last reset.
    private static func peakMemoryBytes() -> Int { statusBytes("VmHWM:") }

    /// `VmRSS` of /proc/self/status: the resident memory now.
    private static func residentMemoryBytes() -> Int { statusBytes("VmRSS:") }

    private static func statusBytes(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }
}
