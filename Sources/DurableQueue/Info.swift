import LogFormat

/// A queue's counts.
public struct QueueInfo: Sendable, Equatable {
    /// The name it was declared with.
    public var name: String
    /// Whether it is durable (`QueueOptions.durable`); a transient queue reports 0 `deadLettered` and
    /// `liveBytes`.
    public var durable: Bool
    /// Waiting for a consumer (persistent and transient).
    public var ready: Int
    /// Delivered and not yet acked (or checked out to a consumer that has not read them yet).
    public var unacked: Int
    /// Consumers attached to it in this process now (0 in `StoreInspector` summaries).
    public var consumers: Int
    /// Messages rejected, over the delivery limit or pushed out by `maxLength` (moved to the dead-letter
    /// queue or dropped), since the queue was declared.
    public var deadLettered: UInt64
    /// Payload bytes of its persistent messages (what its share of the log must keep).
    public var liveBytes: Int
}

/// A stream's extent and its consumer groups' committed offsets.
public struct StreamInfo: Sendable, Equatable {
    /// The name it was declared with.
    public var name: String
    /// The offset of its oldest retained record (`nextOffset` when it retains none).
    public var firstOffset: StreamOffset
    /// The offset the next record will get: how many records were ever appended, retained or not.
    public var nextOffset: StreamOffset
    /// Body bytes of its retained records: what `StreamOptions.maxBytes` limits.
    public var bytes: Int
    /// Each consumer group's committed offset (the next offset it will read), by group name; a group that
    /// never committed is absent.
    public var committedOffsets: [String: StreamOffset]
}

/// A record of a stream.
public struct StreamRecord: Sendable, Equatable {
    /// Its position in the stream, as the append returned it.
    public var offset: StreamOffset
    /// Milliseconds since 1970 when it was appended.
    public var timestamp: Int64
    /// The message as appended: its headers and body.
    public var message: Message
}

/// What the store takes on disk, against what it must keep.
public struct DiskUsage: Sendable, Equatable {
    /// Bytes of the log's segment files on disk (preallocated: whole segments), the prepared ones included.
    public var logBytes: Int
    /// Segment files the log holds, the active one included.
    public var segments: Int
    /// Segment files held ready beside the log: spares kept from truncation for reuse (at most two) and the
    /// next segment, prepared in advance. Counted in `logBytes`.
    public var preparedSegments: Int
    /// Payload bytes of every live message, retained stream record and pending half message.
    public var liveBytes: Int
    /// The LSN the store's latest checkpoint covers (0 before the first): an open replays only the records
    /// after it.
    public var checkpointLSN: LSN
    /// The size of that checkpoint's file (0 before the first).
    public var checkpointBytes: Int
    /// The LSN of the oldest record the log still holds (those before it were truncated away).
    public var firstLSN: LSN
    /// The log's last durable LSN (`WriteAheadLog.durableLSN`); 0 when it holds no record.
    public var lastLSN: LSN
}

/// A background checkpoint or reclamation that failed: the log keeps growing until one succeeds, so an
/// operator must hear of it. Cleared by the next successful pass.
public struct MaintenanceFailure: Sendable, Equatable {
    /// The error of the latest failed pass: typically `.ioFailure`, whose `log` names the call, the path and
    /// the `errno`.
    public var error: QueueError
    /// Milliseconds since 1970 of the latest failure.
    public var time: Int64
    /// Failed passes in a row.
    public var consecutive: Int
}
