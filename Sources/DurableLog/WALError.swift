/// The one error type of the write-ahead log: what went wrong, where, and what to do next.
public struct WALError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as a closed set for code that decides by it; each case says what to do.
    public enum Code: Sendable, Equatable {
        /// A system call failed (`errno` says why). If it was a write or a sync, the log is now failed.
        case ioFailure
        /// An earlier write or sync failed; the log confirms nothing more until it is closed and reopened,
        /// which runs recovery. A failed `fdatasync` is never retried (PostgreSQL's fsyncgate lesson).
        case logFailed
        /// Bytes that held confirmed data are damaged. Open fails; open in salvage mode to cut the log there.
        case corruption
        /// Another process holds the log's writer lock.
        case locked
        /// The log was closed.
        case closed
        /// A record is larger than `LogOptions.recordBytesMax`.
        case recordTooLarge
        /// The LSN is not in the log: never written, not yet durable, or truncated away.
        case lsnOutOfRange
        /// The pending buffer is full (non-blocking appends only): retry after some appends complete.
        case pendingFull
        /// The directory does not hold a log this version can open (foreign or unknown files, bad options).
        case invalidLog
        /// The records were lost to damage that salvage took out of the log (a `.lost` frame stands in their
        /// place; `lsnRange` says which). Their bytes are in the log's quarantine directory.
        case recordsLost
        /// A call's arguments do not describe what it was given (a submission's record count or size).
        case invalidArgument
        /// Replication: the outcome is not known. A leader's log stopped (a failed write or sync, or a close)
        /// after the record was written and possibly shipped, but before its in-sync replicas confirmed it; a
        /// new leader may still commit it. Retry with an idempotent producer, whose retry settles it exactly once.
        case indeterminate
        /// Replication: frames of a leader epoch this log may not take (older than the frames it holds, or
        /// newer than the leader it follows): they come from a deposed leader or a confused one.
        case staleEpoch
        /// Replication: this replica does not lead its group, so it takes no writes. `leaderHint` names the
        /// member it follows, when it knows one: send the write there. Nothing was written.
        case notLeader
        /// Replication: the in-sync set, with the leader, has fewer members than `minInsyncReplicas`, so
        /// nothing could be confirmed; refused before anything was written (retry once replicas are back).
        case notEnoughReplicas
    }

    /// What went wrong, for code that decides by it.
    public var code: Code
    /// What happened in words, with the details (the operation, the numbers); `description` adds the fields
    /// below.
    public var message: String
    /// The file or directory concerned (a segment, the `LOCK` file, a directory), when there is one.
    public var path: String?
    /// Byte offset in `path` of the damaged or lost frame, for `.corruption` and `.recordsLost`; nil otherwise.
    public var offset: Int?
    /// The raw LSNs concerned, when known: the damaged confirmed records of a `.corruption`, the lost records
    /// of a `.recordsLost`.
    public var lsnRange: ClosedRange<UInt64>?
    /// The `errno` of the failed system call, for `.ioFailure`; nil otherwise.
    public var errno: Int32?
    /// For `.notLeader`: the member that leads, as far as this replica knows; nil when it knows none.
    public var leaderHint: String?

    /// An error of `code`; the other fields as described at each. Public so that a `FileSystem`
    /// implementation can throw what the log expects (`.ioFailure` with `errno`, `.locked`).
    public init(_ code: Code, _ message: String, path: String? = nil, offset: Int? = nil,
                lsnRange: ClosedRange<UInt64>? = nil, errno: Int32? = nil, leaderHint: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.offset = offset
        self.lsnRange = lsnRange
        self.errno = errno
        self.leaderHint = leaderHint
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let path { text += " [file \(path)" + (offset.map { " at byte \($0)" } ?? "") + "]" }
        if let lsnRange { text += " [LSN \(lsnRange.lowerBound)...\(lsnRange.upperBound)]" }
        if let errno { text += " [errno \(errno): \(Platform.errorDescription(errno))]" }
        if let leaderHint { text += " [leader \(leaderHint)]" }
        return text
    }

    static func io(_ operation: String, path: String, errno: Int32) -> WALError {
        WALError(.ioFailure, "\(operation) failed", path: path, errno: errno)
    }
}

/// Runs a closure that can only throw `WALError` through an API that rethrows untyped errors
/// (`Array.withUnsafeBytes` and friends), keeping the typed error.
@inline(__always)
package func typedWAL<R>(_ body: () throws -> R) throws(WALError) -> R {
    do {
        return try body()
    } catch let error as WALError {
        throw error
    } catch {
        preconditionFailure("unexpected error \(error)")
    }
}
