import LogFormat

/// A queue's counts.
public struct QueueInfo: Sendable, Equatable {
    public var name: String
    public var durable: Bool
    /// Waiting for a consumer (persistent and transient).
    public var ready: Int
    /// Delivered and not yet acked (or checked out to a consumer that has not read them yet).
    public var unacked: Int
    public var consumers: Int
    /// Messages rejected, over the delivery limit or pushed out by `maxLength` (moved to the dead-letter
    /// queue or dropped), since the queue was declared.
    public var deadLettered: UInt64
    /// Payload bytes of its persistent messages (what its share of the log must keep).
    public var liveBytes: Int
}

/// A stream's extent and its consumer groups' committed offsets.
public struct StreamInfo: Sendable, Equatable {
    public var name: String
    /// The first retained offset and the offset the next record will get.
    public var firstOffset: StreamOffset
    public var nextOffset: StreamOffset
    public var bytes: Int
    public var committedOffsets: [String: StreamOffset]
}

/// A record of a stream.
public struct StreamRecord: Sendable, Equatable {
    public var offset: StreamOffset
    /// Milliseconds since 1970 when it was appended.
    public var timestamp: Int64
    public var message: Message
}

/// What the store takes on disk, against what it must keep.
public struct DiskUsage: Sendable, Equatable {
    /// Bytes of log segment files (preallocated: whole segments).
    public var logBytes: Int
    public var segments: Int
    /// Payload bytes of every live message and retained stream record.
    public var liveBytes: Int
    public var checkpointLSN: LSN
    /// The LSN range the log still holds.
    public var firstLSN: LSN
    public var lastLSN: LSN
}

/// A background checkpoint or reclamation that failed: the log keeps growing until one succeeds, so an
/// operator must hear of it. Cleared by the next successful pass.
public struct MaintenanceFailure: Sendable, Equatable {
    public var error: QueueError
    /// Milliseconds since 1970 of the latest failure.
    public var time: Int64
    /// Failed passes in a row.
    public var consecutive: Int
}
