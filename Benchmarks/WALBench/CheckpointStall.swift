import DurableQueue
import Foundation
import Synchronization
import Workload

/// A probe, not a suite scenario: how long a publish waits when a checkpoint is taken beside it on a store with
/// a deep queue (`wal-bench --checkpoint-stall DIR` on a copy of a store `--fill` made). Publishes one at a
/// time to the filled queue, a checkpoint on a thread of its own after the first thousand, and prints the
/// latencies before and around it.
enum CheckpointStall {
    static func run(directory: String) async throws -> Never {
        var options = StoreOptions()
        options.log.compression = .none
        options.checkpointEveryBytes = .max  // only the probe's own checkpoint
        let store = try await QueueStore.open(directory: directory, options: options)
        let body = Message(body: Array(repeating: 7, count: 1024))
        var latencies: [UInt64] = []
        let checkpointStarted = Atomic<UInt64>(0), checkpointEnded = Atomic<UInt64>(0)
        var startedAt: [UInt64] = []
        for i in 0..<3000 {
            if i == 1000 {
                Thread.detachNewThread {
                    checkpointStarted.store(monotonicNanoseconds(), ordering: .relaxed)
                    try? store.checkpoint()
                    checkpointEnded.store(monotonicNanoseconds(), ordering: .relaxed)
                }
            }
            let t0 = monotonicNanoseconds()
            try await store.publish(to: "backlog", body)
            startedAt.append(t0)
            latencies.append(monotonicNanoseconds() - t0)
        }
        let cs = checkpointStarted.load(ordering: .relaxed), ce = checkpointEnded.load(ordering: .relaxed)
        func summary(_ xs: [UInt64]) -> String {
            let s = xs.sorted()
            guard !s.isEmpty else { return "none" }
            return String(format: "n %d p50 %.0f us p99 %.0f us max %.0f us", s.count, Double(s[s.count / 2]) / 1e3,
                          Double(s[min(s.count - 1, s.count * 99 / 100)]) / 1e3, Double(s.last!) / 1e3)
        }
        let before = zip(startedAt, latencies).filter { $0.0 + $0.1 < cs }.map(\.1)
        let during = zip(startedAt, latencies).filter { $0.0 + $0.1 >= cs && $0.0 <= ce }.map(\.1)
        let after = zip(startedAt, latencies).filter { $0.0 > ce }.map(\.1)
        print("checkpoint \(Double(ce - cs) / 1e6) ms")
        print("before: " + summary(before))
        print("during: " + summary(during))
        print("after:  " + summary(after))
        exit(0)
    }
}
