import Coordination
import DurableLog
import LogFormat
import Logging
import Synchronization

/// The leader's side of one follower's connection: answers the rejoin exchange from the leader's epoch
/// history, then ships its frames as written, from where the follower's log ends, within a window of
/// unacknowledged bytes, and reports each acknowledgement to the in-sync tracker. Transport-free: the caller
/// hands it each message received (`receive`) and calls `pump` when the log wrote more (`observeWrites`).
///
/// Reading frames to ship is a `pread` of bytes the log just wrote (in the page cache unless the follower is
/// far behind): call `receive` and `pump` from a thread of your own, not Swift's cooperative pool.
package final class LeaderSession: Sendable {
    private enum Phase { case awaitingHello, exchanging, installing, shipping, ended }

    private struct InFlight {
        var end: LSN
        var bytes: Int
    }

    private struct State {
        var phase = Phase.awaitingHello
        var follower: ReplicaIdentity?
        var position: ShipPosition?
        var inFlight: [InFlight] = []
        var inFlightBytes = 0
        var acknowledged = LSN.first
        var refusal: (ReplicationMessage.Refusal, String)?
    }

    private let log: WriteAheadLog
    private let history: EpochHistory
    private let epoch: UInt64
    private let tracker: InSyncTracker
    private let windowBytes: Int
    private let runBytesMax: Int
    private let send: @Sendable (ReplicationMessage) -> Void
    private let sendInTurn: (@Sendable (ReplicationMessage) -> Bool)?
    private let requests: (@Sendable ([UInt8]) async -> [UInt8])?
    private let snapshots: (any StateSnapshots)?
    private let snapshotPartBytes: Int
    private let onRefusal: (@Sendable (ReplicationMessage.Refusal) -> Void)?
    private let state = Mutex(State())

    /// - Parameters:
    ///   - history: the leader's epoch history, its own epoch's start included.
    ///   - windowBytes: frames shipped and not yet acknowledged, at most (keep it within the follower's
    ///     `pendingBytesMax`, which then never refuses a run).
    ///   - runBytesMax: the largest run of frames in one message (one frame more when a frame is larger).
    ///   - requests: carries out a request of the layer above and returns its reply (nil: a request ends the
    ///     session as a protocol violation).
    ///   - snapshots: the layer's snapshots, sent to a follower whose log ends before this log's first segment
    ///     (nil: such a follower is refused).
    ///   - snapshotPartBytes: the most state bytes in one snapshot message.
    ///   - sendInTurn: sends a message and blocks until the transport has written it (false: the connection
    ///     failed), for the snapshot's parts: a snapshot of hundreds of megabytes then leaves part by part as the
    ///     connection drains, instead of every part queued in memory at once (nil: parts go through `send`).
    ///   - onRefusal: told each refusal this side makes (a follower of another log, of a newer epoch, out of
    ///     turn), once per session: the node counts them.
    package init(log: WriteAheadLog, history: EpochHistory, epoch: UInt64, tracker: InSyncTracker,
                 windowBytes: Int = 4 << 20, runBytesMax: Int = 256 << 10,
                 requests: (@Sendable ([UInt8]) async -> [UInt8])? = nil,
                 snapshots: (any StateSnapshots)? = nil, snapshotPartBytes: Int = 1 << 20,
                 sendInTurn: (@Sendable (ReplicationMessage) -> Bool)? = nil,
                 onRefusal: (@Sendable (ReplicationMessage.Refusal) -> Void)? = nil,
                 send: @escaping @Sendable (ReplicationMessage) -> Void) {
        self.onRefusal = onRefusal
        self.sendInTurn = sendInTurn
        self.requests = requests
        self.snapshots = snapshots
        self.snapshotPartBytes = max(1, snapshotPartBytes)
        self.log = log
        self.history = history
        self.epoch = epoch
        self.tracker = tracker
        self.windowBytes = windowBytes
        self.runBytesMax = runBytesMax
        self.send = send
    }

    /// The follower, once it said hello.
    package var follower: ReplicaIdentity? { state.withLock { $0.follower } }
    /// The LSN after the last record the follower acknowledged as durable.
    package var acknowledged: LSN { state.withLock { $0.acknowledged } }
    /// For diagnostics: the phase, the position, the bytes in flight.
    package var debugState: String {
        state.withLock { "\($0.phase) at \(String(describing: $0.position)), \($0.inFlight.count) runs (\($0.inFlightBytes) bytes) in flight, acknowledged \($0.acknowledged)" }
    }
    /// Whether the session ended (a refusal either way), and why.
    package var refusal: (ReplicationMessage.Refusal, String)? { state.withLock { $0.refusal } }

    /// Handles one message from the follower.
    package func receive(_ message: ReplicationMessage) {
        switch message {
        case .hello(let hello): greeted(hello)
        case .follow(let from): follow(from: from)
        case .durable(let end): acknowledged(end)
        case .refuse(let reason, let text): state.withLock { s in s.phase = .ended; s.refusal = (reason, text) }
        case .forward(let id, let record): forwarded(id, record)
        case .request(let id, let body): requested(id, body)
        case .epochEnd, .frames, .forwarded, .reply, .snapshot: refuse(.protocolViolation, "a follower's side sent \(message)")
        }
    }

    /// A write the follower forwarded: appended as a write made on this leader would be (refused before
    /// anything is written while the in-sync set is too small), and answered once it committed or failed.
    /// Never waits here: a full pending buffer answers `.pendingFull`.
    private func forwarded(_ id: UInt64, _ record: [UInt8]) {
        let send = self.send
        guard state.withLock({ $0.phase != .ended }) else { return }
        guard tracker.canCommit else {
            return send(.forwarded(id: id, .failed(.notEnoughReplicas, "the in-sync set is below minInsyncReplicas")))
        }
        do throws(WALError) {
            try typedWAL { try record.withUnsafeBytes { bytes in
                try log.append(bytes) { result in
                    switch result {
                    case .success(let lsn): send(.forwarded(id: id, .committed(lsn)))
                    case .failure(let error): send(.forwarded(id: id, .failed(.init(error.code), error.message)))
                    }
                }
            } }
        } catch {
            send(.forwarded(id: id, .failed(.init(error.code), error.message)))
        }
    }

    /// A request of the layer above, made on the follower: carried out by this leader's service in a task of
    /// its own (it waits for a commit), and answered with its reply.
    private func requested(_ id: UInt64, _ body: [UInt8]) {
        guard let requests else { return refuse(.protocolViolation, "a request, and this leader serves none") }
        guard state.withLock({ $0.phase != .ended }) else { return }
        let send = self.send
        Task { send(.reply(id: id, body: await requests(body))) }
    }

    private func greeted(_ hello: ReplicationMessage.Hello) {
        guard hello.log == log.identity else {
            return refuse(.otherLog, "the follower's log is \(hello.log), this leader's \(log.identity)")
        }
        if let last = hello.lastEpoch, last > epoch {
            return refuse(.staleEpoch, "the follower has seen epoch \(last); this leader's is \(epoch)")
        }
        let writtenEnd = log.segments.last?.endLSN ?? log.durableLSN.next
        let answer = hello.lastEpoch.flatMap { history.end(ofEpochAtMost: $0, logEnd: writtenEnd) }
        let proceed: Bool = state.withLock { s in
            // Again after a snapshot: the follower installed it and asks from its new start.
            guard s.phase == .awaitingHello || s.phase == .exchanging || s.phase == .installing else { return false }
            s.phase = .exchanging
            s.follower = ReplicaIdentity(member: hello.member, incarnation: hello.incarnation)
            return true
        }
        guard proceed else { return refuse(.protocolViolation, "a hello while shipping") }
        send(.epochEnd(answer.map { .init(epoch: $0.epoch, end: $0.end) }))
    }

    private func follow(from: LSN) {
        if from < log.start.firstLSN { return sendSnapshot(from: from) }
        let position: ShipPosition
        do { position = try log.shipPosition(for: from) } catch {
            return refuse(.protocolViolation, "the follower's log does not end where a frame of this log ends: \(error)")
        }
        let proceed: Bool = state.withLock { s in
            guard s.phase == .exchanging else { return false }
            s.phase = .shipping
            s.position = position
            s.acknowledged = from
            return true
        }
        guard proceed else { return refuse(.protocolViolation, "follow before the exchange") }
        if let follower, !tracker.sessionStarts(follower, logEnd: from, session: ObjectIdentifier(self)) {
            log.logger.error("""
                replica \(follower) begins a session with its log ending at \(from), before what it had acknowledged \
                as durable: its disk lost synced records; it leaves the in-sync set until it has caught up
                """)
        }
        pump()
    }

    /// The follower's log ends before this log's first segment: the records it lacks are gone from here, so it
    /// is sent the layer's snapshot, which covers them, and where this log starts. It installs that and says
    /// hello again. (A follower in the in-sync set is never this far behind: it holds everything committed, and
    /// segments go only below a snapshot of committed records.)
    private func sendSnapshot(from: LSN) {
        guard let snapshots else {
            return refuse(.protocolViolation, "the follower's log ends at \(from), before this leader's first segment "
                          + "(LSN \(log.start.firstLSN)), and this leader has no snapshot to send in its place")
        }
        // A checkpoint and the truncation after it can come between reading the snapshot and the log's start:
        // read both again until the snapshot covers every record the log no longer holds.
        var found: (file: ReadOnlyFile, covers: LSN, start: (segmentID: SegmentID, firstLSN: LSN))?
        do throws(WALError) {
            for _ in 0..<3 {
                guard let latest = try snapshots.latest() else { break }
                let start = log.start
                #if REPLICATION_BROKEN_SNAPSHOT_GAP  // BROKEN ON PURPOSE (harness check builds only): any snapshot
                let covering = true
                #else
                let covering = latest.covers.next >= start.firstLSN
                #endif
                if covering {
                    found = (latest.file, latest.covers, start)
                    break
                }
            }
        } catch {
            return refuse(.protocolViolation, "the leader cannot read its snapshot: \(error)")
        }
        guard let found else {
            return refuse(.protocolViolation, "no snapshot of this leader covers the records before its first segment")
        }
        let proceed: Bool = state.withLock { s in
            guard s.phase == .exchanging else { return false }
            s.phase = .installing
            return true
        }
        guard proceed else { return refuse(.protocolViolation, "follow before the exchange") }
        let epochs = history.entries.filter { $0.firstLSN < found.start.firstLSN }
        let total = found.file.size
        var offset = 0
        repeat {
            let end = min(total, offset + snapshotPartBytes)
            let bytes: [UInt8]
            do throws(WALError) {
                bytes = try found.file.read(at: offset, count: end - offset)
                guard bytes.count == end - offset else {
                    throw WALError(.invalidLog, "the snapshot file ends at \(offset + bytes.count) of \(total) bytes",
                                   path: found.file.path)
                }
            } catch {
                return refuse(.protocolViolation, "the leader cannot read its snapshot: \(error)")
            }
            let part = ReplicationMessage.snapshot(.init(
                segmentID: found.start.segmentID, firstLSN: found.start.firstLSN, covers: found.covers, epochs: epochs,
                totalBytes: UInt64(total), offset: UInt64(offset), bytes: bytes))
            #if REPLICATION_BROKEN_SNAPSHOT_ALL_AT_ONCE  // BROKEN ON PURPOSE (harness check builds only)
            send(part)
            #else
            if let sendInTurn {
                // The connection failed: the session ends with it, and the follower asks again on its next one.
                guard sendInTurn(part) else { return }
            } else {
                send(part)
            }
            #endif
            offset = end
        } while offset < total
    }

    private func acknowledged(_ end: LSN) {
        let follower: ReplicaIdentity? = state.withLock { s in
            guard s.phase == .shipping else { return nil }
            s.acknowledged = max(s.acknowledged, end)
            while let first = s.inFlight.first, first.end <= end {
                s.inFlightBytes -= first.bytes
                s.inFlight.removeFirst()
            }
            return s.follower
        }
        guard let follower else { return }
        tracker.report(follower, durableBefore: end, session: ObjectIdentifier(self))
        pump()
    }

    /// Ships what the window allows of what the log has written past the follower's position.
    package func pump() {
        let failure: WALError? = state.withLock { s in
            #if REPLICATION_BROKEN_UNBOUNDED_WINDOW  // BROKEN ON PURPOSE (harness check builds only)
            let windowBytes = Int.max
            #else
            let windowBytes = self.windowBytes
            #endif
            while s.phase == .shipping, s.inFlightBytes < windowBytes, let position = s.position {
                let next: (frames: ShippedFrames, endLSN: LSN)?
                do throws(WALError) { next = try log.framesAndEndToShip(from: position, maxBytes: runBytesMax) } catch { return error }
                guard let next else { return nil }
                s.position = next.frames.end
                s.inFlight.append(InFlight(end: next.endLSN, bytes: next.frames.bytes.count))
                s.inFlightBytes += next.frames.bytes.count
                // Sent under the lock, so that runs leave in order.
                send(.frames(next.frames, committed: log.committedLSN))
            }
            return nil
        }
        if let failure { refuse(.protocolViolation, "the leader cannot read its frames: \(failure)") }
    }

    private func refuse(_ reason: ReplicationMessage.Refusal, _ text: String) {
        let first: Bool = state.withLock { s in
            guard s.phase != .ended else { return false }
            s.phase = .ended
            s.refusal = (reason, text)
            return true
        }
        guard first else { return }
        #if !REPLICATION_BROKEN_REFUSALS_UNCOUNTED  // (harness check builds only: the node never hears of it)
        onRefusal?(reason)
        #endif
        send(.refuse(reason, text))
    }
}
