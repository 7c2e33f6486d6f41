import DurableLog
import LogFormat
import Synchronization

/// A follower's copy of its group's store state: the records its leader committed, applied from its own log,
/// so that the replica takes over warm (`QueueStore.open(directory:options:log:writeGate:warm:)`), and
/// checkpointed now and then, so that its log does not grow without end.
///
/// Only what the leader committed is applied, and only what this replica made durable: a follower's tail past
/// the committed LSN may be cut when it rejoins (truncation by epoch), the committed part never. Blocking: call
/// it from threads of your own, one call at a time.
package final class StoreFollower: Sendable {
    private struct Copy {
        var state: StoreState?
        var checkpointLSN: UInt64 = 0
        /// The log's byte count at the last checkpoint, and which log (its counters start at each open).
        var logBytesAtCheckpoint: (log: ObjectIdentifier, bytes: UInt64)?
        /// The checkpoint file's size: it spaces the next (`checkpointSpacingFactor`).
        var checkpointBytes = 0
    }

    package let directory: String
    private let options: StoreOptions
    private let fileSystem: any FileSystem = PosixFileSystem()
    private let copy = Mutex(Copy())

    package init(directory: String, options: StoreOptions) {
        self.directory = directory
        self.options = options
    }

    /// The LSN applied through (0 before the first catch-up).
    package var appliedLSN: LSN { LSN(copy.withLock { $0.state?.appliedLSN ?? 0 }) }

    /// Applies the records of `log` after the state's end, through `committed` and never past what `log` holds
    /// durably. The first call loads the checkpoint. An error leaves the copy as it was (the next call goes on
    /// from there).
    package func catchUp(log: WriteAheadLog, committed: LSN) throws(QueueError) {
        var state: StoreState
        if let held = copy.withLock({ $0.state }) {
            state = held
        } else {
            state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
            let loaded = state.appliedLSN
            let size = Checkpoint.fileBytes(directory: directory, fileSystem: fileSystem)
            copy.withLock { c in
                c.checkpointLSN = loaded
                c.logBytesAtCheckpoint = nil
                c.checkpointBytes = size
            }
        }
        #if QUEUE_BROKEN_FOLLOWER_APPLIES_UNCOMMITTED  // BROKEN ON PURPOSE (harness check builds only)
        let through = log.durableLSN  // a tail a rejoin may cut, applied as if committed
        #else
        let through = min(committed, log.durableLSN)
        #endif
        guard through.rawValue > state.appliedLSN else { return copy.withLock { $0.state = state } }
        try StoreLoader.checkContinuity(checkpoint: state.appliedLSN, logFirst: log.firstLSN, logEnd: log.durableLSN)
        _ = try StoreLoader.replay(into: &state, through: through) { from, onLost, body in
            try log.forEachRecord(from: from, through: through, onLost: onLost, body)
        }
        copy.withLock { $0.state = state }
    }

    /// Writes a checkpoint of the copy once `log` grew by `StoreOptions.checkpointEveryBytes` since the last,
    /// then deletes the segments before both the checkpoint and the oldest live message (as the leader's
    /// maintenance does).
    package func checkpointIfDue(log: WriteAheadLog) throws(QueueError) {
        let bytesNow = log.counters.bytesUncompressed, id = ObjectIdentifier(log)
        let (due, snapshot, previous): (Bool, StoreState?, UInt64) = copy.withLock { c in
            guard let state = c.state else { return (false, nil, 0) }
            guard let since = c.logBytesAtCheckpoint, since.log == id, since.bytes <= bytesNow else {
                c.logBytesAtCheckpoint = (id, bytesNow)
                return (false, nil, 0)
            }
            let due = options.checkpointDue(logBytesSince: bytesNow - since.bytes, lastCheckpointBytes: c.checkpointBytes)
            return (due && state.appliedLSN > c.checkpointLSN, state, c.checkpointLSN)
        }
        guard due, let snapshot else { return }
        do throws(WALError) {
            let size = try Checkpoint.write(snapshot, directory: directory, fileSystem: fileSystem)
            copy.withLock { c in
                c.checkpointLSN = max(c.checkpointLSN, snapshot.appliedLSN)
                c.logBytesAtCheckpoint = (id, bytesNow)
                c.checkpointBytes = size
            }
            let covered = max(snapshot.appliedLSN, previous)
            try log.truncate(before: LSN(min(covered + 1, snapshot.lowestLiveLSN ?? .max)))
        } catch {
            throw QueueError.fileOperation(error, doing: "a follower's checkpoint")
        }
    }

    // MARK: - Snapshots

    /// The checkpoint in `directory` (a leader's, to send to a replica behind its log's first segment) and the
    /// LSN it covers through; nil when there is none. Only the header is read here: the replica that installs
    /// it checks the whole file.
    ///
    /// - Throws: `.corruption` when the file's header is not a checkpoint's; I/O errors.
    package static func latestCheckpoint(directory: String, fileSystem: any FileSystem = PosixFileSystem())
        throws(WALError) -> (file: ReadOnlyFile, covers: LSN)? {
        guard let file = try ReadOnlyFile.open("\(directory)/\(Checkpoint.fileName)", fileSystem: fileSystem) else {
            return nil
        }
        let header = try file.read(at: 0, count: Checkpoint.headerBytes)
        do throws(ByteReader.Malformed) {
            return (file, LSN(try Checkpoint.coveredLSN(header)))
        } catch {
            throw WALError(.corruption, "the checkpoint's header is damaged: \(error)", path: file.path)
        }
    }

    /// Replaces this replica's checkpoint with the file at `path`, its leader's checkpoint through `covers`,
    /// durably (the file is renamed into place); the copy starts again from it. Checks the whole file (its
    /// checksum, then its structure, its LSN) first: nothing is replaced by bytes that do not decode.
    ///
    /// - Throws: `.corruption` when the file is not a checkpoint through `covers`; I/O errors.
    package func install(checkpointFile path: String, covers: LSN) throws(WALError) {
        #if !QUEUE_BROKEN_INSTALLS_UNCHECKED_CHECKPOINT  // skipped only in harness check builds
        let loaded = try Checkpoint.load(path: path, fileSystem: fileSystem)
        let decoded: StoreState
        do throws(ByteReader.Malformed) {
            decoded = try loaded.get()
        } catch {
            throw WALError(.corruption, "a leader's checkpoint does not decode: \(error)", path: path)
        }
        guard decoded.appliedLSN == covers.rawValue else {
            throw WALError(.corruption, "a leader's checkpoint covers LSN \(decoded.appliedLSN), not \(covers) as sent",
                           path: path)
        }
        #endif
        let from = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        try fileSystem.rename(path, to: "\(directory)/\(Checkpoint.fileName)")
        try fileSystem.syncDirectory(directory)
        if from != directory { try fileSystem.syncDirectory(from) }
        copy.withLock { $0 = Copy() }
    }

    /// The copy, handed to a store about to serve on this replica; the follower starts again from the
    /// checkpoint after it.
    func take() -> (state: StoreState, checkpointLSN: UInt64)? {
        copy.withLock { c in
            defer { c = Copy() }
            return c.state.map { ($0, c.checkpointLSN) }
        }
    }
}
