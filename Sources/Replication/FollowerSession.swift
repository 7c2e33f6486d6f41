import Coordination
import DurableLog
import LogFormat
import Synchronization

/// The follower's side of one connection to its leader: the rejoin exchange (cutting a divergent tail where
/// the epochs say, durably, then asking again), then taking the leader's runs of frames into its log and
/// acknowledging each once it is durable. Transport-free: the caller hands it each message received
/// (`receive`) and it sends through `send`.
///
/// Its epoch history (the `epochs` file in the log's directory) gains an entry, saved and synced, before the
/// first frame of an epoch new to it is acknowledged.
///
/// `receive` blocks for a cut (file deletions and syncs) and for saving the epoch history: call it from a
/// thread of your own, not Swift's cooperative pool.
package final class FollowerSession: Sendable {
    /// What the session needs to reopen its log after a cut.
    package struct Configuration: Sendable {
        package var directory: String
        /// The follower's log options (`isReplica` and the log identity are set by the session).
        package var options: LogOptions
        package var fileSystem: any FileSystem
        package var replica: ReplicaIdentity
        /// The epoch of the leader this follower accepted: frames of a newer epoch are refused.
        package var leaderEpoch: UInt64
        /// Where a snapshot from the leader goes (nil: a snapshot ends the session; this follower can then
        /// never catch up once its leader deleted the records it lacks).
        package var snapshots: (any StateSnapshots)?
        /// Told each refusal this side makes (frames of another epoch, a cut below what is committed, a
        /// protocol violation), once per session: the node counts them.
        package var onRefusal: (@Sendable (ReplicationMessage.Refusal) -> Void)?

        package init(directory: String, options: LogOptions, fileSystem: any FileSystem = PosixFileSystem(),
                     replica: ReplicaIdentity, leaderEpoch: UInt64, snapshots: (any StateSnapshots)? = nil,
                     onRefusal: (@Sendable (ReplicationMessage.Refusal) -> Void)? = nil) {
            self.onRefusal = onRefusal
            self.snapshots = snapshots
            self.directory = directory
            self.options = options
            self.fileSystem = fileSystem
            self.replica = replica
            self.leaderEpoch = leaderEpoch
        }
    }

    /// How a session ended.
    package enum Ending: Error, Equatable, Sendable {
        /// This side refused (and told the leader why).
        case refused(ReplicationMessage.Refusal, String)
        /// The leader refused.
        case refusedByLeader(ReplicationMessage.Refusal, String)
    }

    private enum Phase { case rejoining, following, ended(Ending) }

    private struct State {
        var log: WriteAheadLog
        var history: EpochHistory
        var phase: Phase = .rejoining
        /// The highest committed LSN this follower knows (its last frame's watermark at the start, then what
        /// the leader tells): a cut below it is refused.
        var committed: LSN
        var cuts = 0
        /// Whether frames came in this exchange (a snapshot may come only instead of them).
        var tookFrames = false
        /// A snapshot being received: its first part (bytes dropped) and how many bytes its file holds so far.
        var incoming: (description: ReplicationMessage.SnapshotPart, received: UInt64)?
        var installs = 0
    }

    private let configuration: Configuration
    private let send: @Sendable (ReplicationMessage) -> Void
    private let state: Mutex<State>

    /// What observers read (the log, the phase, the cuts), copied out of `state` after each change under a lock
    /// of its own that is never held across I/O: `state`'s lock is held through a cut and an epoch history
    /// save, and a node's async loop reads these.
    private struct Published {
        var log: WriteAheadLog
        var history: EpochHistory
        var phase: Phase
        var cuts: Int
        var installs: Int
    }
    private let published: Mutex<Published>

    /// Writes and requests sent to the leader, waiting for its answer (one id space for both).
    private struct Forwards {
        var nextID: UInt64 = 1
        var waiting: [UInt64: Waiter] = [:]
        var ended = false
    }

    private enum Waiter {
        case write(CheckedContinuation<Result<LSN, WALError>, Never>)
        case request(CheckedContinuation<Result<[UInt8], WALError>, Never>)

        func fail(_ error: WALError) {
            switch self {
            case .write(let c): c.resume(returning: .failure(error))
            case .request(let c): c.resume(returning: .failure(error))
            }
        }
    }
    private let forwards = Mutex(Forwards())
    /// `state.committed`, readable without the lock a cut holds.
    private let committedLSN = Atomic<UInt64>(0)

    /// The highest LSN this follower knows its leader committed (the watermark of the frames it took).
    package var committed: LSN { LSN(committedLSN.load(ordering: .relaxed)) }

    /// Copies what observers read out of `s`. Called with `state`'s lock held, after each change.
    private func publish(_ s: State) {
        published.withLock { $0 = Published(log: s.log, history: s.history, phase: s.phase, cuts: s.cuts, installs: s.installs) }
    }

    /// A session over `log` (a follower's log, open), with its epoch history from the log's directory (entries
    /// past what the log accepted dropped, and the file saved without them: a crash can leave the history ahead
    /// of the frames). Blocks for the file.
    package init(log: WriteAheadLog, configuration: Configuration,
                 send: @escaping @Sendable (ReplicationMessage) -> Void) throws(WALError) {
        self.configuration = configuration
        self.send = send
        var history = try EpochHistory.load(directory: configuration.directory, fileSystem: configuration.fileSystem)
        let loadedCount = history.entries.count
        #if REPLICATION_BROKEN_HISTORY_CUT_TO_DURABLE_END
        // BROKEN ON PURPOSE (harness check builds only): a run an earlier session accepted and the disk has not
        // synced yet loses its epochs here, and the next save writes the history without them.
        history.truncate(from: log.durableLSN.next)
        #else
        // Not the durable end: on a log that stays open across sessions (a reconnect), runs an earlier session
        // accepted may still be on their way to the disk; their epochs are in the history, and dropping them
        // here would lose them from the file at the next save while the log keeps their records (found by the
        // cluster simulation: a replica whose history said its records began at LSN 50, elected, answered a
        // rejoining replica that none of its epochs existed, and that replica cut records it had confirmed).
        history.truncate(from: log.acceptedEnd)
        #endif
        #if !REPLICATION_BROKEN_HISTORY_CUT_NOT_SAVED
        // Saved at once when that dropped an epoch: kept in the file, an epoch begun where this log ends (a
        // power cut took its records, or its leader wrote none) would come back with the next load, and once
        // this replica holds another epoch's records there, it would answer, as a leader, that the earlier
        // epoch ended before them, and make a rejoining replica cut records the group committed (the cluster
        // simulation found the refusal this caused: `cutBelowCommitted`).
        if history.entries.count != loadedCount {
            try history.save(directory: configuration.directory, fileSystem: configuration.fileSystem)
        }
        #endif
        state = Mutex(State(log: log, history: history, committed: log.lastFrameWatermark))
        committedLSN.store(log.lastFrameWatermark.rawValue, ordering: .relaxed)
        published = Mutex(Published(log: log, history: history, phase: .rejoining, cuts: 0, installs: 0))
    }

    /// The follower's log now (a cut closes it and opens it again).
    package var log: WriteAheadLog { published.withLock { $0.log } }
    /// The epoch history as it stands.
    package var history: EpochHistory { published.withLock { $0.history } }
    /// Whether the exchange is over and frames flow.
    package var isFollowing: Bool { published.withLock { if case .following = $0.phase { true } else { false } } }
    /// How the session ended, once it has.
    package var ending: Ending? { published.withLock { if case .ended(let e) = $0.phase { e } else { nil } } }
    /// For diagnostics: the phase, what the leader said is committed, the log's watermarks and counters.
    package var debugState: String {
        state.withLock { "\($0.phase) committed \($0.committed) durable \($0.log.durableLSN) closed \($0.log.isClosed) \($0.log.counters)" }
    }
    /// How many times the exchange cut the log.
    package var cuts: Int { published.withLock { $0.cuts } }
    /// How many snapshots the session installed.
    package var installs: Int { published.withLock { $0.installs } }

    /// Opens the exchange: says who this follower is and where its log ends, once every run an earlier
    /// session accepted is durable (blocks until then).
    package func start() {
        log.waitUntilAcceptedIsDurable()
        send(.hello(state.withLock { hello($0) }))
    }

    private func hello(_ s: State) -> ReplicationMessage.Hello {
        .init(log: s.log.identity, member: configuration.replica.member, incarnation: configuration.replica.incarnation,
              lastEpoch: s.history.lastEpoch, end: s.log.durableLSN.next)
    }

    /// Handles one message from the leader.
    package func receive(_ message: ReplicationMessage) {
        switch message {
        case .epochEnd(let answer): answered(answer)
        case .frames(let run, let committed): take(run, committed: committed)
        case .refuse(let reason, let text): end(.refusedByLeader(reason, text), tell: false)
        case .forwarded(let id, let outcome): answered(forward: id, outcome)
        case .reply(let id, let body): answered(request: id, body)
        case .snapshot(let part): take(part)
        case .hello, .follow, .durable, .forward, .request: end(.refused(.protocolViolation, "a leader's side sent \(message)"), tell: true)
        }
    }

    // MARK: - Forwarded writes

    /// Sends a write made on this follower to the leader, which appends it as its own; returns its LSN once
    /// the leader committed it. Suspends; blocks no thread.
    ///
    /// - Throws: the leader's error for it (`.notEnoughReplicas`, `.notLeader`: nothing written; `.pendingFull`,
    ///   `.recordTooLarge`, `.logFailed`, `.closed`), `.indeterminate` when the session ends before the answer
    ///   (the leader may still commit it: an idempotent producer's retry settles it), and `.notLeader` when the
    ///   session had already ended (nothing sent).
    package func forward(_ record: [UInt8]) async throws(WALError) -> LSN {
        try await awaitAnswer(Waiter.write) { .forward(id: $0, record: record) }
    }

    /// Sends a request of the layer above to the leader's service and returns its reply. Suspends; blocks no
    /// thread.
    ///
    /// - Throws: `.indeterminate` when the session ends before the reply (the leader may have carried it out),
    ///   and `.notLeader` when the session had already ended (nothing sent).
    package func request(_ body: [UInt8]) async throws(WALError) -> [UInt8] {
        try await awaitAnswer(Waiter.request) { .request(id: $0, body: body) }
    }

    /// Sends `message(id)` and waits for the leader's answer to `id`.
    private func awaitAnswer<T>(_ waiter: @escaping (CheckedContinuation<Result<T, WALError>, Never>) -> Waiter,
                                _ message: (UInt64) -> ReplicationMessage) async throws(WALError) -> T {
        let send = self.send
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, WALError>, Never>) in
            let id: UInt64? = forwards.withLock { f in
                guard !f.ended else { return nil }
                let id = f.nextID
                f.nextID += 1
                f.waiting[id] = waiter(continuation)
                return id
            }
            guard let id else {
                return continuation.resume(returning: .failure(WALError(.notLeader, "the session with the leader has ended; nothing was sent")))
            }
            send(message(id))
        }
        return try result.get()
    }

    /// The leader's reply to request `id`; an answer of the other kind is not one (a confused leader): the
    /// caller learns it does not know what happened.
    private func answered(request id: UInt64, _ body: [UInt8]) {
        switch forwards.withLock({ $0.waiting.removeValue(forKey: id) }) {
        case .request(let continuation): continuation.resume(returning: .success(body))
        case let other?: other.fail(WALError(.indeterminate, "the leader answered request \(id) as a forwarded write"))
        case nil: break
        }
    }

    private func answered(forward id: UInt64, _ outcome: ReplicationMessage.ForwardOutcome) {
        let continuation: CheckedContinuation<Result<LSN, WALError>, Never>
        switch forwards.withLock({ $0.waiting.removeValue(forKey: id) }) {
        case .write(let c): continuation = c
        case let other?: return other.fail(WALError(.indeterminate, "the leader answered forwarded write \(id) as a request"))
        case nil: return
        }
        switch outcome {
        case .committed(let lsn): continuation.resume(returning: .success(lsn))
        case .failed(let failure, let text):
            continuation.resume(returning: .failure(WALError(failure.code, "the leader: \(text)")))
        }
    }

    /// The session ended: what was forwarded and not answered may or may not commit.
    private func endForwards() {
        let waiting = forwards.withLock { f in
            f.ended = true
            defer { f.waiting = [:] }
            return Array(f.waiting.values)
        }
        for waiter in waiting {
            waiter.fail(WALError(.indeterminate, "the session with the leader ended before it answered"))
        }
    }

    // MARK: - The exchange

    private func answered(_ answer: ReplicationMessage.EpochEnd?) {
        enum Next { case follow(LSN), hello(ReplicationMessage.Hello), end(Ending) }
        let next: Next = state.withLock { s in
            guard case .rejoining = s.phase else { return .end(.refused(.protocolViolation, "an epoch end while following")) }
            let end = s.log.durableLSN.next
            #if REPLICATION_BROKEN_CUT_TO_WATERMARK
            // BROKEN ON PURPOSE (harness check builds only): Kafka before KIP-101, cutting everything past the
            // committed watermark it knows instead of asking where its epochs end (and cutting below it).
            let step: LSN? = end > s.committed.next ? s.committed.next : nil
            #else
            let step = s.history.rejoinStep(end: end, answer: answer.map { ($0.epoch, $0.end) })
            #endif
            guard let cut = step else {
                s.phase = .following
                publish(s)
                return .follow(end)
            }
            do throws(WALError) {
                try cutLog(&s, from: cut)
            } catch {
                if error.code == .invalidArgument, cut <= s.committed {
                    return .end(.refused(.cutBelowCommitted, "\(error)"))
                }
                return .end(.refused(.protocolViolation, "the cut at LSN \(cut) failed: \(error)"))
            }
            return .hello(hello(s))
        }
        switch next {
        case .follow(let from): send(.follow(from: from))
        case .hello(let h): send(.hello(h))
        case .end(let ending): end(ending, tell: true)
        }
    }

    /// Cuts the log from `cut` on (closing it) and opens it again, unless it ends there; cuts the history to
    /// match. Lock held.
    private func cutLog(_ s: inout State, from cut: LSN) throws(WALError) {
        if cut < s.log.durableLSN.next {
            try s.log.closeCuttingTail(from: cut, committed: s.committed)
            s.log = try WriteAheadLog.open(directory: configuration.directory, options: logOptions(identity: s.log.identity),
                                           fileSystem: configuration.fileSystem)
        }
        s.history.truncate(from: cut)
        try s.history.save(directory: configuration.directory, fileSystem: configuration.fileSystem)
        s.cuts += 1
        publish(s)
    }

    private func logOptions(identity: LogIdentity) -> LogOptions {
        var options = configuration.options
        options.isReplica = true
        options.identity = identity
        return options
    }

    // MARK: - A snapshot

    /// One part of the leader's snapshot, sent instead of frames because this log ends before the leader's
    /// first segment. Each part is written to the snapshot's file in this directory as it comes (a snapshot is
    /// never held whole in memory); once all are there, the snapshot is installed from the file (the log closed,
    /// replaced by an empty one that starts at the leader's first segment, the layer's state by the snapshot:
    /// `SnapshotInstall`) and the exchange starts again from the new start. Lock held through each write and the
    /// install, as through a cut.
    private func take(_ part: ReplicationMessage.SnapshotPart) {
        enum Next { case wait, hello(ReplicationMessage.Hello), end(Ending) }
        let next: Next = state.withLock { s in
            func violation(_ why: String) -> Next { .end(.refused(.protocolViolation, why)) }
            guard case .following = s.phase, !s.tookFrames else { return violation("a snapshot part out of turn") }
            guard let snapshots = configuration.snapshots else {
                return violation("this follower takes no snapshot, and its log ends before its leader's first segment")
            }
            guard part.firstLSN > s.log.durableLSN.next else {
                return violation("a snapshot for a log that starts at \(part.firstLSN); this one already ends at \(s.log.durableLSN.next)")
            }
            #if REPLICATION_BROKEN_SNAPSHOT_GAP  // BROKEN ON PURPOSE (harness check builds only): takes a gap
            let covering = true
            #else
            let covering = part.covers.next >= part.firstLSN
            #endif
            guard covering else {
                return violation("a snapshot through \(part.covers) for a log that starts at \(part.firstLSN)")
            }
            var incoming = s.incoming ?? (part.withoutBytes, 0)
            guard part.describesSameSnapshot(as: incoming.description), part.offset == incoming.received,
                  part.offset + UInt64(part.bytes.count) <= part.totalBytes else {
                return violation("a snapshot part that does not continue the parts before it")
            }
            do throws(WALError) {
                try SnapshotInstall.write(part, directory: configuration.directory, fileSystem: configuration.fileSystem)
            } catch {
                s.incoming = nil
                return .end(.refused(.logFailed, "writing the snapshot's part failed: \(error)"))
            }
            incoming.received += UInt64(part.bytes.count)
            guard incoming.received == part.totalBytes else {
                s.incoming = incoming
                return .wait
            }
            s.incoming = nil
            do throws(WALError) {
                try install(&s, part, snapshots: snapshots)
            } catch {
                return .end(.refused(.logFailed, "the snapshot's install failed: \(error)"))
            }
            return .hello(hello(s))
        }
        switch next {
        case .wait: break
        case .hello(let h): send(.hello(h))
        case .end(let ending): end(ending, tell: true)
        }
    }

    /// Installs the snapshot whose parts are all in its file and opens the new log. Lock held. A failure part way
    /// leaves the install's marker, and the next open of the replica deletes its log; an empty log is opened here
    /// if that works.
    private func install(_ s: inout State, _ part: ReplicationMessage.SnapshotPart,
                         snapshots: any StateSnapshots) throws(WALError) {
        let options = logOptions(identity: s.log.identity)
        let directory = configuration.directory, fileSystem = configuration.fileSystem
        try s.log.close()
        do throws(WALError) {
            try SnapshotInstall.install(part, directory: directory, options: options, fileSystem: fileSystem,
                                        snapshots: snapshots)
        } catch {
            if (try? SnapshotInstall.finishInterrupted(directory: directory, fileSystem: fileSystem)) != nil,
               let empty = try? WriteAheadLog.open(directory: directory, options: options, fileSystem: fileSystem) {
                s.log = empty
                s.history = EpochHistory()
                publish(s)
            }
            throw error
        }
        s.log = try WriteAheadLog.open(directory: directory, options: options, fileSystem: fileSystem)
        s.history = try EpochHistory.load(directory: directory, fileSystem: fileSystem)
        s.committed = max(s.committed, part.covers)
        committedLSN.store(s.committed.rawValue, ordering: .relaxed)
        s.installs += 1
        s.phase = .rejoining
        publish(s)
    }

    // MARK: - Frames

    /// Runs are handed over one at a time (each connection's messages arrive on one queue), so the run is
    /// checked and its epochs recorded under the lock, and taken by the log after it: waiting there for room
    /// (the leader's window bounds what arrives meanwhile) must not hold the lock the session's observers read.
    private func take(_ run: ShippedFrames, committed: LSN) {
        let prepared: Result<(WriteAheadLog, ShippedFrames.Verified), Ending> = state.withLock { s in
            guard case .following = s.phase, s.incoming == nil else {
                return .failure(.refused(.protocolViolation, "frames before the exchange ended"))
            }
            s.tookFrames = true
            s.committed = max(s.committed, committed)
            committedLSN.store(s.committed.rawValue, ordering: .relaxed)
            do throws(WALError) {
                let verified = try run.verify(segmentBytes: s.log.options.segmentBytes)
                // An epoch new to this follower is in its history, durably, before any of its frames is acknowledged.
                var changed = false
                for start in verified.epochStarts {
                    if let last = s.history.lastEpoch, start.epoch <= last { continue }
                    try s.history.begin(epoch: start.epoch, at: start.firstLSN)
                    changed = true
                }
                if changed {
                    try s.history.save(directory: configuration.directory, fileSystem: configuration.fileSystem)
                    publish(s)
                }
                return .success((s.log, verified))
            } catch {
                return .failure(.refused(error.code == .staleEpoch ? .staleEpoch : .protocolViolation, "\(error)"))
            }
        }
        let log: WriteAheadLog, verified: ShippedFrames.Verified
        switch prepared {
        case .success(let taken): (log, verified) = taken
        case .failure(let ending): return end(ending, tell: true)
        }
        let end = verified.endLSN
        let send = self.send
        do {
            try log.acceptShippedWaiting(run, verified: verified, leaderEpoch: configuration.leaderEpoch) { [self] result in
                switch result {
                case .success: send(.durable(through: end))
                case .failure(let error): self.end(.refused(.logFailed, "\(error)"), tell: true)
                }
            }
        } catch {
            self.end(.refused(error.code == .staleEpoch ? .staleEpoch : .protocolViolation, "\(error)"), tell: true)
        }
    }

    private func end(_ ending: Ending, tell: Bool) {
        let first: Bool = state.withLock { s in
            if case .ended = s.phase { return false }
            s.phase = .ended(ending)
            publish(s)
            return true
        }
        if first, case .refused(let reason, let text) = ending {
            #if !REPLICATION_BROKEN_REFUSALS_UNCOUNTED  // (harness check builds only: the node never hears of it)
            configuration.onRefusal?(reason)
            #endif
            if tell { send(.refuse(reason, text)) }
        }
        endForwards()
    }

    /// The connection closed under the session (the transport's end, not a refusal): forwarded writes still
    /// waiting are indeterminate, and new ones are not sent.
    package func connectionClosed() { endForwards() }
}
