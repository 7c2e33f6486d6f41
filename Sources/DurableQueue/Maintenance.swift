import LogFormat
import DurableLog

/// What runs in the background: ack timeouts, stream age retention, idle producer expiry, half message
/// check-backs, checkpoints, reclamation.
extension QueueStore {
    func startMaintenance() {
        let interval = options.maintenanceInterval
        let task = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self, !Task.isCancelled else { return }
                await self.maintain()
            }
        }
        maintenanceTask.withLock { $0 = task }
    }

    /// One maintenance pass (the background task runs one every `maintenanceInterval`), at the time of the
    /// store's clock (`StoreOptions.clock`).
    func maintain() async {
        var actions = Actions()
        let (trims, due): ([Submission], Bool) = core.withLock { c in
            guard c.failure == nil, !c.closed else { return ([], false) }
            c.expireDeliveries(now: options.clock.monotonic, &actions)
            let now = options.clock.wallMilliseconds
            var trims: [Submission] = []
            for s in c.state.streams.values {
                guard let age = s.options.maxAge?.milliseconds else { continue }
                let old = s.entries.prefix { $0.time < now - age }.count
                if old > 0 {
                    trims.append(Submission(records: [.trimStream(stream: s.id, before: s.firstOffset + UInt64(old))],
                                            intent: .none))
                }
            }
            let idleSince = now - options.producerIdleExpiry.milliseconds
            for p in c.state.producers.values where p.lastActive < idleSince {
                // Conditional on the producer being idle still when the record applies.
                trims.append(Submission(records: [.expireProducer(producer: p.id, idleSince: p.lastActive)],
                                        intent: .none))
            }
            let due = options.checkpointDue(logBytesSince: log.counters.bytesUncompressed - c.logBytesAtCheckpoint,
                                            lastCheckpointBytes: c.checkpointBytes)
            return (trims, due)
        }
        actions.submissions.append(contentsOf: trims)
        actions.replies.append(contentsOf: replyDeadlines.expire(now: options.clock.monotonic))
        run(actions)
        // Check-backs call the application, which may take its time: off this pass (one pass at a time).
        if options.clock.wallMilliseconds >= nextCheckBack.load(ordering: .relaxed), halfMessageChecker.withLock({ $0 != nil }),
           core.withLock({ !$0.state.halfMessages.isEmpty }) {
            Task { [weak self] in await self?.checkHalfMessages() }
        }
        if due { await reclaimRecordingFailure() }
        telemetry.refresh(queues: queues(), usage: diskUsage)
    }

    /// The checkpoint and reclamation of a maintenance pass. A failure is kept in `maintenanceFailure` (and
    /// the next pass tries again): nothing confirmed is at risk, but the log grows until a pass succeeds.
    private func reclaimRecordingFailure() async {
        do {
            try await reclaim()
            core.withLock { $0.maintenanceFailure = nil }
        } catch {
            core.withLock { c in
                // A store that closed or failed meanwhile says so itself.
                guard !c.closed, c.failure == nil else { return }
                let previous = c.maintenanceFailure?.consecutive ?? 0
                c.maintenanceFailure = MaintenanceFailure(error: error, time: options.clock.wallMilliseconds,
                                                          consecutive: previous + 1)
            }
            if let failure = maintenanceFailure { telemetry.maintenanceFailed(failure) }
        }
    }

    /// The background checkpoint or reclamation that failed last, nil once a pass succeeded again (or none
    /// ever failed). While it is set, the log is not being truncated and grows.
    public var maintenanceFailure: MaintenanceFailure? { core.withLock { $0.maintenanceFailure } }

    /// `checkpoint()` on a thread of its own (its `fdatasync`s and directory syncs never block the pool).
    func checkpointOffThePool() async throws(QueueError) {
        try await onOwnThread { () throws(QueueError) in try self.checkpoint() }
    }

    /// Writes a checkpoint of the state as applied now, then deletes the log segments nothing needs any more
    /// (every record covered by the checkpoint and no live message body in them). Blocks the calling thread
    /// for the syncs: from async code use `reclaim()`, which runs it off the cooperative pool.
    /// - Throws: `.ioFailure` (the checkpoint or a deletion failed; nothing confirmed is affected and the next
    ///   checkpoint tries again), `.closed`, `.logFailed`.
    public func checkpoint() throws(QueueError) {
        do { try writeCheckpoint(truncate: true) } catch {
            throw QueueError.fileOperation(error, doing: "writing a checkpoint and deleting covered segments")
        }
    }

    func writeCheckpoint(truncate: Bool) throws(WALError) {
        try checkpointLock.withLock { _ throws(WALError) in
            // A copy of the state is a consistent snapshot (copy-on-write: the live state pays for the copy
            // of what it changes next, not this call).
            let (snapshot, bytesNow) = core.withLock { ($0.state, log.counters.bytesUncompressed) }
            let previous = core.withLock { $0.checkpointLSN }
            if snapshot.appliedLSN > previous {
                let started = ContinuousClock.now
                let size = try Checkpoint.write(snapshot, directory: directory, fileSystem: fileSystem)
                let (s, atto) = (ContinuousClock.now - started).components
                telemetry.checkpointed(lsn: snapshot.appliedLSN, bytes: size,
                                       nanoseconds: UInt64(s) * 1_000_000_000 + UInt64(atto / 1_000_000_000))
                core.withLock {
                    $0.checkpointLSN = snapshot.appliedLSN
                    $0.logBytesAtCheckpoint = bytesNow
                    $0.checkpointBytes = size
                }
            }
            guard truncate else { return }
            let covered = max(snapshot.appliedLSN, previous)
            #if QUEUE_BROKEN_TRUNCATE_IGNORES_LIVE  // BROKEN ON PURPOSE (harness check builds only)
            let floor = covered + 1
            #else
            let floor = min(covered + 1, snapshot.lowestLiveLSN ?? .max)
            #endif
            try log.truncate(before: LSN(floor))
        }
    }

    /// Checkpoints, deletes what is no longer needed, and copies the few live messages of old, mostly dead
    /// segments forward so that those segments can go too (then checkpoints again). One unacked message can
    /// then pin at most the segment it was copied into, not the log behind it.
    public func reclaim() async throws(QueueError) {
        let segmentsBefore = log.segments.count
        // The checkpoint's syncs, and the scan of every queued message that chooses what to move (tens of
        // milliseconds for a deep queue), on a thread of their own: neither holds a cooperative thread.
        let moves = try await onOwnThread { () throws(QueueError) in
            try self.checkpoint()
            return self.relocationCandidates()
        }
        guard !moves.isEmpty else {
            telemetry.reclaimed(relocated: 0, segmentsBefore: segmentsBefore, segmentsAfter: log.segments.count)
            return
        }
        var batch: [StoreRecord] = []
        var batchBytes = 0
        for (queue, id, lsn) in moves {
            let message: Message
            do { message = try await readMessageOffPool(at: lsn) } catch where error.code == .notFound { continue }
            let record = StoreRecord.relocate(queue: queue, message: id, headers: message.headers, body: message.body)
            let size = message.body.count + 256
            if batchBytes + size > options.log.frameBytesMax / 2, !batch.isEmpty {
                _ = try await perform(batch)
                batch.removeAll()
                batchBytes = 0
            }
            batch.append(record)
            batchBytes += size
        }
        if !batch.isEmpty { _ = try await perform(batch) }
        try await checkpointOffThePool()
        telemetry.reclaimed(relocated: moves.count, segmentsBefore: segmentsBefore, segmentsAfter: log.segments.count)
    }

    /// The live messages of the oldest segments that are covered by the checkpoint, hold no stream record
    /// and are mostly dead: (queue, message id, body LSN), in body LSN order.
    ///
    /// It looks at every queued message, so it works on a copy of the state taken under the lock (copy-on-write:
    /// no entry is copied), never under the lock itself: with a deep queue (millions of messages) the scan
    /// and the sort it once ran there held every publish for a good part of a second after each checkpoint.
    /// Live bytes are summed per segment, and only the messages of the segments chosen are listed (a list of
    /// every live message took 32 bytes each: 128 MB for four million).
    private func relocationCandidates() -> [(UInt64, UInt64, UInt64)] {
        let segments = log.segments.dropLast()  // never the active one
        let (state, covered) = core.withLock { ($0.state, $0.checkpointLSN + 1) }
        let ends = segments.map(\.endLSN.rawValue).filter { $0 <= covered }
        guard let bound = ends.last else { return [] }
        /// The candidate a body at `lsn` (< bound) is in: the first whose end is after it.
        func segmentIndex(_ lsn: UInt64) -> Int {
            var low = 0, high = ends.count - 1
            while low < high {
                let mid = (low + high) / 2
                if ends[mid] <= lsn { low = mid + 1 } else { high = mid }
            }
            return low
        }
        var liveBytes = [Int](repeating: 0, count: ends.count)
        for q in state.queues.values {
            q.forEachEntry { e in if e.bodyLSN < bound { liveBytes[segmentIndex(e.bodyLSN)] += Int(e.bodyBytes) } }
        }
        let streamPin = state.streams.values.compactMap { $0.entries.first?.lsn }.min() ?? .max
        let mostlyDead = options.compactBelowLiveFraction * Double(options.log.segmentBytes)
        var chosen = 0  // the oldest `chosen` candidates are emptied
        for (i, end) in ends.enumerated() {
            if streamPin < end || Double(liveBytes[i]) >= mostlyDead { break }
            chosen = i + 1
        }
        guard chosen > 0 else { return [] }
        let movedBelow = ends[chosen - 1]
        var moves: [(UInt64, UInt64, UInt64)] = []
        for q in state.queues.values {
            q.forEachEntry { e in if e.bodyLSN < movedBelow { moves.append((q.id, e.id, e.bodyLSN)) } }
        }
        moves.sort { $0.2 < $1.2 }
        return moves
    }
}
