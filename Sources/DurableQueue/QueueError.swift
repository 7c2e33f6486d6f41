import DurableLog

/// The one error type of the queue layer: what went wrong and what to do next.
public struct QueueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as a closed set for code that decides by it; each case says what to do.
    public enum Code: Sendable, Equatable {
        /// No queue or stream by that name (or it was deleted meanwhile).
        case notFound
        /// A queue or stream of that name exists with other options.
        case mismatchedOptions
        /// The queue is at `maxLength` with `.rejectPublish`.
        case queueFull
        /// The delivery tag is not outstanding on this consumer: already acked, rejected or returned (ack
        /// timeout, cancel).
        case unknownDeliveryTag
        /// The consumer was cancelled.
        case cancelled
        /// The store's pending buffer is full (non-blocking calls only): retry after confirms arrive.
        case pendingFull
        /// The log failed a write or sync: nothing more is confirmed until the store is reopened. The
        /// underlying `WALError` is in `log`.
        case logFailed
        /// Bytes on disk (log or checkpoint) are damaged; `log` or the message says where.
        case corruption
        /// Arguments out of range (a message larger than the log's records, an empty name, ...).
        case invalidArgument
        /// The store is closed.
        case closed
        /// A transaction's commit was refused and none of it applied: a delivery it acks is no longer out
        /// (the store restarted), or a queue or stream it writes to was deleted or is full, or (replication)
        /// the leader changed before the commit was written; `abortReason` says which. Redo the work.
        case transactionAborted
        /// An idempotent producer's id is not registered (never, or it expired after being idle): register
        /// again and resume from `lastSequence`.
        case unknownProducer
        /// A newer instance of this idempotent producer registered (a higher epoch): stop this one.
        case fenced
        /// An idempotent publish skipped a sequence number: the message says which one the store expects.
        case outOfSequence
        /// Opening: another process, or another open store or log in this process, holds the store's lock.
        case locked
        /// A system call failed outside the write path (opening the store: permissions, a file where a
        /// directory belongs; a checkpoint or a segment deletion: a full disk, ...); the log's error in `log`
        /// names the call, the path and the `errno`. Nothing confirmed is affected.
        case ioFailure
        /// Opening: the directory holds files this version cannot open as a store (foreign or unknown files in
        /// the log directory, log options that do not fit it).
        case invalidStore
        /// Replication: this node does not lead its group, so it serves no writes and no consumers now;
        /// `leaderHint` names the member that leads, when it knows one. Nothing was written.
        case notLeader
        /// Replication: the in-sync set, with the leader, is below `minInsyncReplicas`, so nothing could be
        /// confirmed; refused before anything was written. Retry once replicas are back.
        case notEnoughReplicas
        /// Replication: the outcome is not known. The leader stopped leading (or its log stopped) after the
        /// records were written, and possibly shipped, but before its in-sync replicas confirmed them; a new
        /// leader may still hold them. An idempotent producer's retry settles it exactly once.
        case indeterminate
    }

    /// What went wrong, for code that decides by it.
    public var code: Code
    /// What happened in words, with the names and numbers involved; for people and logs, not for matching.
    public var message: String
    /// The log's own error, when the log is the cause.
    public var log: WALError?
    /// For `.notLeader`: the member that leads, as far as this node knows; nil when it knows none.
    public var leaderHint: String?
    /// For `.transactionAborted`: why none of the transaction applied.
    public var abortReason: AbortReason?

    /// Why a transaction was aborted.
    public enum AbortReason: Sendable, Equatable {
        /// The store refused it: a delivery it acks is no longer out, or a queue or stream it writes to was
        /// deleted or is full.
        case refused
        /// Replication: the node it was begun on stopped leading before the commit was written; nothing of it
        /// is in the log. Begin it again on the new leader.
        case leaderChanged
    }

    /// An error of `code` with `message`, and the log's error when the log is the cause.
    public init(_ code: Code, _ message: String, log: WALError? = nil, leaderHint: String? = nil,
                abortReason: AbortReason? = nil) {
        self.code = code
        self.message = message
        self.log = log
        self.leaderHint = leaderHint
        self.abortReason = abortReason
    }

    public var description: String {
        "\(code): \(message)" + (leaderHint.map { " (leader: \($0))" } ?? "") + (log.map { " (log: \($0))" } ?? "")
    }

    /// What an error of the log means outside the write path (opening the store, writing a checkpoint,
    /// deleting segments): no confirm depends on it, so an I/O error is the cause to report (a permission, a
    /// path, a full disk), not a failed log. `doing` says what was being done ("opening the store").
    static func fileOperation(_ error: WALError, doing: String) -> QueueError {
        switch error.code {
        case .locked: QueueError(.locked, error.message, log: error)
        case .ioFailure:
            QueueError(.ioFailure, "\(doing) failed: \(error.message)"
                       + (error.errno.map { " (\(Platform.errorDescription($0)))" } ?? ""), log: error)
        case .invalidLog, .invalidArgument: QueueError(.invalidStore, error.message, log: error)
        default: from(error)
        }
    }

    package static func from(_ error: WALError) -> QueueError {
        switch error.code {
        case .corruption: QueueError(.corruption, "the log holds damaged confirmed data", log: error)
        case .closed: QueueError(.closed, "the store is closed", log: error)
        case .recordTooLarge, .invalidArgument:
            QueueError(.invalidArgument, "the records are larger than the log takes (recordBytesMax, pendingBytesMax)",
                       log: error)
        case .pendingFull: QueueError(.pendingFull, "the pending buffer is full; retry after confirms arrive", log: error)
        case .notLeader: QueueError(.notLeader, error.message, log: error, leaderHint: error.leaderHint)
        case .notEnoughReplicas: QueueError(.notEnoughReplicas, error.message, log: error)
        case .indeterminate:
            QueueError(.indeterminate, "the leader stopped before the records were confirmed; they may still be "
                       + "committed by the next leader", log: error)
        // Listed rather than `default`, so that a new code of the log is mapped on purpose.
        case .ioFailure, .logFailed, .lsnOutOfRange, .locked, .invalidLog, .recordsLost, .staleEpoch:
            QueueError(.logFailed, "the log failed; nothing more is confirmed until the store is reopened", log: error)
        }
    }
}
