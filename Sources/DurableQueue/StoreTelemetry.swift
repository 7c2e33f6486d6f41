import CoreMetrics
import Logging
import DurableLog

/// What the store tells the application's logging (swift-log) and metrics (swift-metrics) backends. The
/// log underneath reports its own (`wal_*`, see `LogOptions.metricsFactory`) to the same backends. Gauges
/// are refreshed by each maintenance pass, never on the hot path. Every metric carries `store` = directory.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `queue_ready`, `queue_unacked`, `queue_dead_lettered` | gauge, per `queue` | counts as in `QueueInfo` |
/// | `store_log_bytes`, `store_live_bytes` | gauge | the log on disk against the live data it holds |
/// | `store_open_duration` | timer | checkpoint load, log recovery and replay |
/// | `store_checkpoint_duration` | timer | each checkpoint written |
/// | `store_checkpoint_bytes` | gauge | the latest checkpoint's size |
/// | `store_checkpoint_bytes_written_total` | counter | every checkpoint's bytes (against `logCounters.bytesWritten`: their share of the writes) |
/// | `store_maintenance_failures_total` | counter | failed background checkpoints or reclamations |
final class StoreTelemetry: Sendable {
    let logger: Logger
    let factory: any MetricsFactory
    let directory: String
    let logBytes: Gauge
    let liveBytes: Gauge
    let openDuration: CoreMetrics.Timer
    let checkpointDuration: CoreMetrics.Timer
    let checkpointBytes: Gauge
    let checkpointBytesWritten: Counter
    let maintenanceFailures: Counter

    init(options: StoreOptions, directory: String) {
        var logger = options.logger ?? Logger(label: "DurableQueue")
        logger[metadataKey: "store"] = "\(directory)"
        self.logger = logger
        self.directory = directory
        factory = options.metricsFactory ?? MetricsSystem.factory
        let d = [("store", directory)]
        logBytes = Gauge(label: "store_log_bytes", dimensions: d, factory: factory)
        liveBytes = Gauge(label: "store_live_bytes", dimensions: d, factory: factory)
        openDuration = CoreMetrics.Timer(label: "store_open_duration", dimensions: d, factory: factory)
        checkpointDuration = CoreMetrics.Timer(label: "store_checkpoint_duration", dimensions: d, factory: factory)
        checkpointBytes = Gauge(label: "store_checkpoint_bytes", dimensions: d, factory: factory)
        checkpointBytesWritten = Counter(label: "store_checkpoint_bytes_written_total", dimensions: d, factory: factory)
        maintenanceFailures = Counter(label: "store_maintenance_failures_total", dimensions: d, factory: factory)
    }

    /// The log's options with the store's logger and metrics factory, unless the embedder set the log's own.
    static func logOptions(_ options: StoreOptions) -> LogOptions {
        var log = options.log
        if log.logger == nil, var logger = options.logger {
            logger[metadataKey: "component"] = "wal"
            log.logger = logger
        }
        if log.metricsFactory == nil { log.metricsFactory = options.metricsFactory }
        return log
    }

    func opened(_ report: QueueStore.OpenReport) {
        let ms = report.loadMilliseconds + report.replayMilliseconds
        openDuration.recordNanoseconds(Int64(ms * 1_000_000))
        logger.info("opened the store", metadata: [
            "checkpointLSN": "\(report.checkpointLSN)", "replayedRecords": "\(report.replayedRecords)",
            "milliseconds": "\(Int(ms))"])
        if let salvage = report.salvage, !salvage.droppedMessages.isEmpty || !salvage.uncertainLSNs.isEmpty
            || !salvage.droppedHalfMessages.isEmpty || !salvage.lostStreamRecords.isEmpty {
            logger.error("salvage: records lost to damage cost messages", metadata: [
                "droppedMessages": "\(salvage.droppedMessages.count)",
                "droppedHalfMessages": "\(salvage.droppedHalfMessages.count)",
                "lostStreamRecords": "\(salvage.lostStreamRecords.count)",
                "uncertainLSNs": "\(salvage.uncertainLSNs)"])
        }
    }

    func checkpointed(lsn: UInt64, bytes: Int, nanoseconds: UInt64) {
        checkpointDuration.recordNanoseconds(Int64(clamping: nanoseconds))
        checkpointBytes.record(bytes)
        checkpointBytesWritten.increment(by: bytes)
        logger.debug("checkpoint written", metadata: [
            "lsn": "\(lsn)", "bytes": "\(bytes)", "milliseconds": "\(nanoseconds / 1_000_000)"])
    }

    func reclaimed(relocated: Int, segmentsBefore: Int, segmentsAfter: Int) {
        guard relocated > 0 || segmentsAfter < segmentsBefore else { return }
        logger.info("reclaimed log segments", metadata: [
            "relocatedMessages": "\(relocated)", "segmentsBefore": "\(segmentsBefore)", "segmentsAfter": "\(segmentsAfter)"])
    }

    func maintenanceFailed(_ failure: MaintenanceFailure) {
        maintenanceFailures.increment()
        logger.error("background checkpoint or reclamation failed; the log grows until one succeeds", metadata: [
            "error": "\(failure.error)", "consecutive": "\(failure.consecutive)"])
    }

    func fenced(producer: String, epoch: UInt32) {
        logger.info("idempotent producer fenced by a newer instance", metadata: ["producer": "\(producer)", "epoch": "\(epoch)"])
    }

    /// Gauges from a maintenance pass.
    func refresh(queues: [QueueInfo], usage: DiskUsage) {
        logBytes.record(usage.logBytes)
        liveBytes.record(usage.liveBytes)
        for q in queues where q.durable {
            let d = [("store", directory), ("queue", q.name)]
            Gauge(label: "queue_ready", dimensions: d, factory: factory).record(q.ready)
            Gauge(label: "queue_unacked", dimensions: d, factory: factory).record(q.unacked)
            Gauge(label: "queue_dead_lettered", dimensions: d, factory: factory).record(Int64(clamping: q.deadLettered))
        }
    }
}
