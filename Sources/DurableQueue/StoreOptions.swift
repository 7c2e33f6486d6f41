import CoreMetrics
import Logging
import DurableLog

/// How a store is laid out and maintained.
public struct StoreOptions: Sendable {
    /// The write-ahead log's options (segment size, compression, pending bytes: the store's backpressure).
    public var log = LogOptions()
    /// Recently published or read message contents kept in memory for delivery without a log read.
    public var bodyCacheBytes = 64 << 20
    /// A checkpoint is written after this many bytes of log since the last one, so that opening replays at
    /// most about this much (more for deep queues: see `checkpointSpacingFactor`).
    public var checkpointEveryBytes = 64 << 20
    /// Checkpoints are also spaced by at least this many times the last one's size, in bytes of log: deep
    /// queues make large checkpoints (23 bytes per queued message: ten million take 230 MB), and writing one
    /// every `checkpointEveryBytes` would write several times the log's own bytes again. With the default 4,
    /// checkpoints write at most a quarter of what the log does, however deep the queues, and an open
    /// replays at most four checkpoints' worth of log (time proportional to the state, as the checkpoint's own
    /// load is). RabbitMQ's quorum queues space their snapshots by queue length the same way. 0: every
    /// `checkpointEveryBytes`, whatever the checkpoint's size.
    public var checkpointSpacingFactor = 4

    /// Whether a checkpoint is due after `logBytes` of log since the last one, whose file took `checkpointBytes`.
    func checkpointDue(logBytesSince logBytes: UInt64, lastCheckpointBytes checkpointBytes: Int) -> Bool {
        let spacing = max(0, checkpointSpacingFactor).multipliedReportingOverflow(by: checkpointBytes)
        #if QUEUE_BROKEN_CHECKPOINT_SPACING_IGNORED  // BROKEN ON PURPOSE (harness check builds only)
        let threshold = checkpointEveryBytes
        #else
        let threshold = max(checkpointEveryBytes, spacing.overflow ? .max : spacing.partialValue)
        #endif
        return logBytes >= UInt64(max(0, threshold))
    }

    /// A segment older than the checkpoint whose live messages take less than this fraction of it has them
    /// copied forward so that it can be deleted (copy-forward compaction).
    public var compactBelowLiveFraction = 0.5
    /// How often maintenance runs: ack timeouts, stream age retention, checkpoints, reclamation.
    public var maintenanceInterval: Duration = .milliseconds(100)
    /// An idempotent producer that neither registered nor published for this long is forgotten (its
    /// deduplication state is what the store must keep per producer). Kafka's default is a day.
    public var producerIdleExpiry: Duration = .seconds(86_400)
    /// When half messages are checked back and what happens when the checks run out.
    public var halfMessages = HalfMessageOptions()
    /// The store's time (ack timeouts, record timestamps, retention by age, producer expiry, check-backs);
    /// tests inject a `ManualStoreClock`.
    public var clock: any StoreClock = SystemStoreClock()
    /// Where the store (and its log, unless `log.logger` is set) reports opening, salvage, checkpoints,
    /// reclamation, maintenance failures and fencing (swift-log). nil: a logger labelled "DurableQueue" from
    /// the application's logging bootstrap.
    public var logger: Logger?
    /// Where the store's metrics (and its log's, unless `log.metricsFactory` is set) go (swift-metrics; the
    /// names are in `StoreTelemetry`). nil: the factory the application bootstrapped.
    public var metricsFactory: (any MetricsFactory)?

    /// The defaults given at each property.
    public init() {}
}

/// The check-back of half messages (RocketMQ's transaction check): an unresolved half message is asked
/// about `firstCheckAfter` its prepare, then every `checkInterval`, up to `maxChecks` times; then it is
/// rolled back, or moved to `unresolvedQueue` when one is named.
public struct HalfMessageOptions: Sendable, Equatable {
    /// How long after its prepare a half message is first asked about, at the earliest (check-backs run with
    /// the store's maintenance).
    public var firstCheckAfter: Duration = .seconds(6)
    /// How long after an unanswered check-back (`.unknown`) the next one is due, at the earliest; also how
    /// long after the last unanswered one the message is rolled back or moved.
    public var checkInterval: Duration = .seconds(60)
    /// How many times a half message is asked about; once that many went unanswered, its next due check
    /// rolls it back (or moves it to `unresolvedQueue`) without asking.
    public var maxChecks = 15
    /// A durable queue (by name) that takes half messages whose checks ran out, marked
    /// `.halfMessageUnresolved`; nil: they are rolled back.
    public var unresolvedQueue: String?

    /// Each argument sets the property of its name; the defaults are the properties' defaults.
    public init(firstCheckAfter: Duration = .seconds(6), checkInterval: Duration = .seconds(60), maxChecks: Int = 15,
                unresolvedQueue: String? = nil) {
        self.firstCheckAfter = firstCheckAfter
        self.checkInterval = checkInterval
        self.maxChecks = maxChecks
        self.unresolvedQueue = unresolvedQueue
    }
}
