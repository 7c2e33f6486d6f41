import CoreMetrics
import Logging

/// What the log tells the application's own logging (swift-log) and metrics (swift-metrics) backends, so
/// that swift-prometheus or swift-otel, chosen by the application, see the log without glue. Every metric
/// carries the dimension `log` = the log's directory. Hot-path cost: one timer and one recorder update per
/// `fdatasync` (a group), never per record.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `wal_sync_duration` | timer | each `fdatasync` |
/// | `wal_records_per_sync` | recorder | records each successful sync made durable |
/// | `wal_sync_failures_total` | counter | failed writes and syncs (the log then confirms nothing more) |
/// | `wal_recovery_duration` | timer | recovery at open |
final class LogTelemetry: Sendable {
    let logger: Logger
    let syncDuration: CoreMetrics.Timer
    let recordsPerSync: Recorder
    let failures: Counter
    let recoveryDuration: CoreMetrics.Timer
    /// A sync slower than this is logged as a warning.
    let slowSyncNanoseconds: UInt64

    init(options: LogOptions, directory: String) {
        var logger = options.logger ?? Logger(label: "DurableLog")
        logger[metadataKey: "log"] = "\(directory)"
        self.logger = logger
        let factory = options.metricsFactory ?? MetricsSystem.factory
        let dimensions = [("log", directory)]
        syncDuration = CoreMetrics.Timer(label: "wal_sync_duration", dimensions: dimensions, factory: factory)
        recordsPerSync = Recorder(label: "wal_records_per_sync", dimensions: dimensions, aggregate: true, factory: factory)
        failures = Counter(label: "wal_sync_failures_total", dimensions: dimensions, factory: factory)
        recoveryDuration = CoreMetrics.Timer(label: "wal_recovery_duration", dimensions: dimensions, factory: factory)
        let (seconds, attoseconds) = options.slowSyncThreshold.components
        slowSyncNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    func synced(nanoseconds: UInt64, path: String) {
        syncDuration.recordNanoseconds(Int64(clamping: nanoseconds))
        if nanoseconds >= slowSyncNanoseconds {
            logger.warning("slow fdatasync", metadata: ["milliseconds": "\(nanoseconds / 1_000_000)", "file": "\(path)"])
        }
    }

    func madeDurable(records: UInt64) {
        recordsPerSync.record(Int64(clamping: records))
    }

    func failed(_ error: WALError) {
        failures.increment()
        logger.critical("write or sync failed: the log confirms nothing more until it is reopened",
                        metadata: ["error": "\(error)"])
    }

    /// What recovery found and did, at the level an operator wants: a clean open is info, a cut tail a
    /// warning, salvage an error (confirmed records were lost).
    func recovered(_ report: RecoveryReport, nanoseconds: UInt64) {
        recoveryDuration.recordNanoseconds(Int64(clamping: nanoseconds))
        var metadata: Logger.Metadata = [
            "segments": "\(report.segments)", "nextLSN": "\(report.nextLSN)",
            "cleanShutdown": "\(report.cleanShutdown)", "milliseconds": "\(nanoseconds / 1_000_000)",
        ]
        if !report.lostLSNs.isEmpty { metadata["lostLSNs"] = "\(report.lostLSNs)" }
        logger.info("opened the log", metadata: metadata)
        if let cut = report.tornTail {
            logger.warning("cut a torn tail (written, never confirmed)", metadata: [
                "file": "\(cut.path)", "offset": "\(cut.offset)", "cause": "\(cut.cause.rawValue)", "reason": "\(cut.reason)",
                "framesDropped": "\(cut.framesDropped)", "segmentsRemoved": "\(cut.segmentsRemoved)"])
        }
        if let cut = report.replicaCut {
            // Damage to records it acknowledged, or a tail it never synced while catching up: it cannot tell.
            logger.error("replica cut records a later frame vouched for; it rejoins as a new replica (cut bytes in quarantine)", metadata: [
                "file": "\(cut.path)", "offset": "\(cut.offset)", "firstLostLSN": "\(cut.firstLostLSN)",
                "vouchedThrough": "\(cut.laterWatermark)"])
        }
        for patch in report.patches {
            logger.error("salvage: damaged confirmed records marked lost", metadata: [
                "lostLSNs": "\(patch.lostLSNs)", "file": "\(patch.path)", "offset": "\(patch.offset)",
                "quarantine": "\(patch.quarantinedTo ?? "")"])
        }
        if let cut = report.salvaged, case .cut = report.salvagePlan {
            logger.error("salvage: log cut before damaged confirmed records; what was cut is in quarantine",
                         metadata: ["file": "\(cut.path)", "offset": "\(cut.offset)", "firstLostLSN": "\(cut.firstLostLSN)"])
        }
    }
}
