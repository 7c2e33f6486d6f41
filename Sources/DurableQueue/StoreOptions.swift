import WriteAheadLog

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

    public init() {}
}
