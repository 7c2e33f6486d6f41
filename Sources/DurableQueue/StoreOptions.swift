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
    /// most about this much.
    public var checkpointEveryBytes = 64 << 20
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
