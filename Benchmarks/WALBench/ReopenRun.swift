import DurableQueue
import Foundation
import Workload
import DurableLog

/// The time to open a store after a crash with a large log: a child process (this binary, `--fill`) publishes
/// `bytes` of 1 KiB random messages that nobody consumes, then exits without closing (no final checkpoint, no
/// seal: as after `kill -9`), and the parent times `QueueStore.open`. With checkpoints every 64 MiB (the default)
/// open replays only the tail; with checkpoints off it replays everything.
enum ReopenRun {
    static func fill(directory: String, bytes: Int, checkpoints: Bool) async throws -> Never {
        var options = StoreOptions()
        options.log.compression = .none
        if !checkpoints { options.checkpointEveryBytes = .max }
        let store = try await QueueStore.open(directory: directory, options: options)
        try await store.declareQueue("backlog")
        let random = Payloads.messages(.random, count: 4096)
        let bodies = (0..<4096).map { Message(body: Array(random[($0 * 1024)..<($0 * 1024 + 1024)])) }
        let count = bytes / 1060
        let next = SharedProgress()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<256 {
                group.addTask {
                    while true {
                        let i = next.next.add(1, ordering: .relaxed).oldValue
                        if i >= count { return }
                        try await store.publish(to: "backlog", bodies[i % bodies.count])
                    }
                }
            }
            try await group.waitForAll()
        }
        exit(0)  // no close: the next open is a crash recovery
    }

    static func openOnce(directory: String) async throws -> Never {
        var options = StoreOptions()
        options.log.compression = .none
        let t0 = monotonicNanoseconds()
        let store = try await QueueStore.open(directory: directory, options: options)
        let ms = Double(monotonicNanoseconds() - t0) / 1e6
        let r = store.openReport
        print(String(format: "open %.1f ms: checkpoint %.1f beside log %.1f: %.1f; replay %.1f (%d records)", ms,
                     r.checkpointMilliseconds, r.logOpenMilliseconds, r.loadMilliseconds, r.replayMilliseconds,
                     r.replayedRecords))
        exit(0)
    }

    struct Result: Codable {
        var checkpoints: Bool
        var logBytes: Int
        var openMilliseconds: Double
        var checkpointLSN: UInt64
        var replayedRecords: Int
        var replayedBytes: Int
        var logBytesScanned: Int
        var queued: Int
        var checkpointMilliseconds: Double
        var logOpenMilliseconds: Double
        /// The checkpoint's load and the log's open together (side by side: about the longer of the two).
        var loadMilliseconds: Double
        var replayMilliseconds: Double
        /// `walctl verify`'s work on the same log after the store closed: every frame's CRC and every payload
        /// decompressed, in MB of frames per second.
        var verifyMegabytesPerSecond = 0.0
    }

    static func run(directory: String, bytes: Int, checkpoints: Bool) async throws -> Result {
        let dir = directory + "/reopen-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--fill", dir, String(bytes), checkpoints ? "checkpoints" : "none"]
        try child.run()
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { throw BenchError("the fill process failed") }
        var options = StoreOptions()
        options.log.compression = .none
        if !checkpoints { options.checkpointEveryBytes = .max }
        let t0 = monotonicNanoseconds()
        let store = try await QueueStore.open(directory: dir, options: options)
        let t1 = monotonicNanoseconds()
        let usage = store.diskUsage
        var result = Result(checkpoints: checkpoints, logBytes: usage.logBytes, openMilliseconds: Double(t1 - t0) / 1e6,
                      checkpointLSN: store.openReport.checkpointLSN.rawValue, replayedRecords: store.openReport.replayedRecords,
                      replayedBytes: store.openReport.replayedBytes, logBytesScanned: store.openReport.log.bytesScanned,
                      queued: store.queueInfo("backlog")?.ready ?? 0,
                      checkpointMilliseconds: store.openReport.checkpointMilliseconds,
                      logOpenMilliseconds: store.openReport.logOpenMilliseconds,
                      loadMilliseconds: store.openReport.loadMilliseconds,
                      replayMilliseconds: store.openReport.replayMilliseconds)
        try store.close()
        let v0 = monotonicNanoseconds()
        let inspection = try LogInspector.inspect(directory: dir + "/wal", verifyPayloads: true)
        let seconds = Double(monotonicNanoseconds() - v0) / 1e9
        result.verifyMegabytesPerSecond = Double(inspection.segments.reduce(0) { $0 + $1.frameBytes }) / 1e6 / seconds
        return result
    }
}
