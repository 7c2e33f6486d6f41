import Foundation
import Glibc
import Logging
import MetricsTestKit
import Synchronization
import Testing
import DurableLog
@testable import DurableQueue

/// Log lines kept for a test to read.
final class CapturedLogs: Sendable {
    struct Line: Sendable { var level: Logger.Level; var message: String; var metadata: [String: String] }
    private let lines = Mutex<[Line]>([])

    var all: [Line] { lines.withLock { $0 } }

    func logger(_ label: String = "test") -> Logger {
        Logger(label: label) { _ in Handler(sink: self) }
    }

    fileprivate func add(_ line: Line) { lines.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
            sink.add(Line(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}

/// The store and its log report to the application's own swift-log and swift-metrics backends, end to end:
/// a test backend is handed in through the options and the figures and lines move as the store works.
@Suite(.timeLimit(.minutes(1))) struct TelemetryTests {
    @Test func metricsMoveAsTheStoreWorks() async throws {
        let dir = TemporaryDirectory()
        let metrics = TestMetrics()
        var options = testOptions()
        options.metricsFactory = metrics
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareQueue("orders")
        for i in 0..<5 { try await store.publish(to: "orders", text("o\(i)")) }
        let consumer = try store.consume(queue: "orders", prefetch: 2)
        let got = try await take(2, from: consumer)
        try await consumer.ack(got[0].tag)
        await store.maintain()

        let wal = [("log", dir.path + "/wal")]
        #expect(try metrics.expectTimer("wal_sync_duration", wal).values.count >= 7)
        #expect(try metrics.expectRecorder("wal_records_per_sync", wal).values.reduce(0, +) >= 7)
        #expect(try metrics.expectTimer("wal_recovery_duration", wal).values.count == 1)
        #expect(try metrics.expectTimer("store_open_duration", [("store", dir.path)]).values.count == 1)
        let queue = [("store", dir.path), ("queue", "orders")]
        // Four not acked, split between ready and checked out as the consumer's prefetch stood.
        let ready = try metrics.expectGauge("queue_ready", queue).lastValue ?? -1
        let unacked = try metrics.expectGauge("queue_unacked", queue).lastValue ?? -1
        #expect(ready + unacked == 4 && unacked >= 1)
        #expect(try metrics.expectGauge("store_log_bytes", [("store", dir.path)]).lastValue ?? 0 > 0)
    }

    @Test func aFailedSyncIsCountedAndLoggedCritical() async throws {
        let dir = TemporaryDirectory()
        let metrics = TestMetrics()
        let logs = CapturedLogs()
        let fs = FaultInjectingFileSystem()
        var options = testOptions()
        options.metricsFactory = metrics
        options.logger = logs.logger()
        let store = try await QueueStore.open(directory: dir.path, options: options, fileSystem: fs)
        defer { try? store.close() }
        try await store.declareQueue("q")
        fs.inject(.init(.dataSync, errno: EIO))
        let e = await expectQueueError(.logFailed) { try await store.publish(to: "q", text("x")) }
        #expect(e?.code == .logFailed)
        #expect(try metrics.expectCounter("wal_sync_failures_total", [("log", dir.path + "/wal")]).totalValue == 1)
        let critical = logs.all.filter { $0.level == .critical }
        #expect(critical.count == 1 && critical[0].message.contains("confirms nothing more"))
        #expect(critical[0].metadata["log"] == dir.path + "/wal" && critical[0].metadata["component"] == "wal")
    }

    @Test func recoveryAndSalvageAreLoggedAtTheirLevels() async throws {
        let dir = TemporaryDirectory()
        let logs = CapturedLogs()
        var options = testOptions()
        options.logger = logs.logger()
        // A slow fdatasync is a warning too, and a loaded machine (the whole suite at once) has some: not this
        // test's subject.
        options.log.slowSyncThreshold = .seconds(3600)
        var store = try await QueueStore.open(directory: dir.path, options: options)
        try await store.declareQueue("q")
        try store.close()
        store = try await QueueStore.open(directory: dir.path, options: options)
        try store.close()
        let opened = logs.all.filter { $0.message == "opened the log" }
        #expect(opened.count == 2 && opened.allSatisfy { $0.level == .info })
        #expect(opened.last?.metadata["cleanShutdown"] == "true")
        #expect(logs.all.contains { $0.message == "opened the store" && $0.metadata["store"] == dir.path })
        #expect(!logs.all.contains { $0.level >= .warning })
    }

    @Test func aFailedBackgroundCheckpointIsAnErrorLine() async throws {
        let dir = TemporaryDirectory()
        let logs = CapturedLogs()
        let metrics = TestMetrics()
        let fs = FaultInjectingFileSystem()
        var options = testOptions()
        options.checkpointEveryBytes = 1
        options.logger = logs.logger()
        options.metricsFactory = metrics
        let store = try await QueueStore.open(directory: dir.path, options: options, fileSystem: fs)
        defer { try? store.close() }
        try await store.declareQueue("q")
        fs.inject(.init(.rename, errno: ENOSPC))
        try await store.publish(to: "q", text("a"))
        await store.maintain()
        #expect(logs.all.contains { $0.level == .error && $0.message.contains("background checkpoint") })
        #expect(try metrics.expectCounter("store_maintenance_failures_total", [("store", dir.path)]).totalValue == 1)
    }
}
