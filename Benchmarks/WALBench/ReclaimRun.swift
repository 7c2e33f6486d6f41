import DurableQueue
import Foundation

/// Reclamation under a stuck message: one consumer takes the first message and never acks it; 64 publishers
/// and an acking consumer push `totalBytes` of 1 KiB messages through the queue. Without copy-forward the
/// stuck message would pin every segment after it; the samples of disk use over time show what the log
/// keeps. Small segments and checkpoints (4 MiB, every 8 MiB of log) so that a short run shows many cycles.
enum ReclaimRun {
    struct Sample: Codable {
        var seconds: Double
        var logBytes: Int
        var liveBytes: Int
        var writtenBytes: Int
    }

    struct Result: Codable {
        var totalBytes: Int
        var segmentBytes: Int
        var samples: [Sample]
        var maxLogBytes: Int
        var finalLogBytes: Int
        var stuckMessageSurvived: Bool
    }

    static func run(messages: MessageSet, directory: String, totalBytes: Int) async throws -> Result {
        let dir = directory + "/reclaim-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = StoreOptions()
        options.log.segmentBytes = 4 << 20
        options.checkpointEveryBytes = 8 << 20
        options.maintenanceInterval = .milliseconds(20)
        let store = try await QueueStore.open(directory: dir, options: options)
        defer { try? store.close() }
        try await store.declareQueue("q")
        let bodies = messages.bodies()
        try await store.publish(to: "q", bodies[0])
        let stuck = try store.consume(queue: "q", prefetch: 1)
        var stuckIterator = stuck.deliveries.makeAsyncIterator()
        guard let held = try await stuckIterator.next() else { throw BenchError("no stuck delivery") }

        let count = totalBytes / messages.size
        let acker = try store.consume(queue: "q", prefetch: 512)
        let acking = Task {
            var n = 0
            for try await d in acker.deliveries {
                n += 1
                if n % 64 == 0 || n == count { try await acker.ack(d.tag, multiple: true) }
                if n == count { return }
            }
        }
        let start = monotonicNanoseconds()
        let sampling = Task {
            var samples: [Sample] = []
            while !Task.isCancelled {
                let usage = store.diskUsage
                samples.append(Sample(seconds: Double(monotonicNanoseconds() - start) / 1e9, logBytes: usage.logBytes,
                                      liveBytes: usage.liveBytes, writtenBytes: Int(store.logCounters.bytesWritten)))
                try? await Task.sleep(for: .milliseconds(100))
            }
            return samples
        }
        let next = SharedProgress()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    while true {
                        let i = next.next.add(1, ordering: .relaxed).oldValue
                        if i >= count { return }
                        // Stay a little ahead of the acker, as a steady system does.
                        while (store.queueInfo("q")?.ready ?? 0) > 20_000 { try await Task.sleep(for: .milliseconds(1)) }
                        try await store.publish(to: "q", bodies[(i + 1) % bodies.count])
                    }
                }
            }
            try await group.waitForAll()
        }
        try await acking.value
        try await store.reclaim()
        sampling.cancel()
        var samples = await sampling.value
        let final = store.diskUsage
        samples.append(Sample(seconds: Double(monotonicNanoseconds() - start) / 1e9, logBytes: final.logBytes,
                              liveBytes: final.liveBytes, writtenBytes: Int(store.logCounters.bytesWritten)))
        let survived = store.queueInfo("q").map { $0.unacked == 1 } ?? false
        _ = held
        return Result(totalBytes: totalBytes, segmentBytes: options.log.segmentBytes, samples: samples,
                      maxLogBytes: samples.map(\.logBytes).max() ?? 0, finalLogBytes: final.logBytes,
                      stuckMessageSurvived: survived)
    }
}
