import Foundation
import LogFormat
import Synchronization
import DurableLog

/// A durable message store: queues with publisher confirms and consumer acks, and streams with committed
/// offsets, on one shared write-ahead log (`<directory>/wal`) plus a checkpoint of the derived state.
///
/// Every state change is one log record, applied to the state only once it is durable, in log order, by the
/// same code that replays it at open. So a confirm (publish), an ack or an offset commit that returned is on
/// disk, and the state after a crash is the state of the confirmed records.
public final class QueueStore: Sendable, CompletionSink {
    /// The store's directory, as given to `open`: the log is in `wal/` inside it, beside the `checkpoint` file.
    public let directory: String
    /// The options the store was opened with.
    public let options: StoreOptions
    /// What opening found: the log's recovery, the checkpoint used, the records replayed.
    public let openReport: OpenReport
    let log: WriteAheadLog
    let fileSystem: any FileSystem
    let cache: BodyCache
    let core: Mutex<Core>
    let maintenanceTask = Mutex<Task<Void, Never>?>(nil)
    let checkpointLock = Mutex(())
    let halfMessageChecker = Mutex<HalfMessageChecker?>(nil)
    /// True while a check-back pass runs (one at a time).
    let checkingHalfMessages = Mutex(false)
    let telemetry: StoreTelemetry
    /// When (ms since 1970) maintenance should start the next check-back pass.
    let nextCheckBack = Atomic<Int64>(0)
    /// Where message bodies missing from the cache are read for async callers: a serial dispatch queue, whose
    /// threads are not the cooperative pool's (and, unlike a thread per read, cost no thread start).
    let bodyReads = DispatchQueue(label: "DurableQueue.bodyReads")
    /// Asked before every append, when set (a replicated store: the in-sync set may be too small to commit).
    let writeGate: (@Sendable () -> QueueError?)?
    /// How long a caller waits for the confirm of a write the gate let through, when set (a replicated store:
    /// its group may be unable to commit for as long as its followers are gone). See `ReplyDeadlines`.
    let confirmTimeout: Duration?
    /// The callers waiting under `confirmTimeout`.
    let replyDeadlines = ReplyDeadlines()

    /// What `open` found and did, and where its time went.
    public struct OpenReport: Sendable {
        /// What the log's recovery found and did (a torn tail cut, salvage).
        public var log: RecoveryReport
        /// The LSN the checkpoint covered; 0 without one.
        public var checkpointLSN: LSN
        /// Log records after the checkpoint that were replayed to rebuild the state.
        public var replayedRecords: Int
        /// Bytes of those records as encoded (uncompressed, without the log's 4-byte length prefixes).
        public var replayedBytes: Int
        /// Milliseconds spent loading the checkpoint.
        public var checkpointMilliseconds = 0.0
        /// Milliseconds spent opening the log, its recovery included.
        public var logOpenMilliseconds = 0.0
        /// Milliseconds from the start of the open to the replay: the checkpoint's load and the log's open, which
        /// run side by side on the real file system (then this is about the longer of the two, not their sum).
        public var loadMilliseconds = 0.0
        /// Milliseconds spent replaying the records after the checkpoint (and taking out what salvage lost).
        public var replayMilliseconds = 0.0
        /// When the log holds records that salvage took out (now or at an earlier open): what they cost.
        public var salvage: SalvageReport?
    }

    /// Opens (creating if needed) the store in `directory`: recovers the log, loads the checkpoint, replays
    /// the log after it, and returns every delivery of the previous run to its queue (marked redelivered).
    /// The file work (recovery, reading the checkpoint, replay) runs on a thread of its own: the calling task
    /// suspends, it never blocks a cooperative thread.
    ///
    /// - Throws: `QueueError` `.corruption` (damaged log or checkpoint: the error says where), `.locked`,
    ///   `.ioFailure` (with the log's `WALError` and its errno), `.invalidStore`.
    public static func open(directory: String, options: StoreOptions = StoreOptions(),
                            fileSystem: any FileSystem = PosixFileSystem()) async throws(QueueError) -> QueueStore {
        let (store, salvage) = try await onOwnThread { () throws(QueueError) in
            try load(directory: directory, options: options, fileSystem: fileSystem)
        }
        return try await start(store, salvage: salvage)
    }

    /// Opens the store in `directory` on a log someone else opened (a replica that leads its group: its log
    /// confirms only what the in-sync replicas hold), from the checkpoint in `directory` and a replay of `log`.
    /// Before each append the store asks `writeGate`, and refuses the write with the error it returns (nothing
    /// written). A caller of a write the gate let through waits for its confirm at most `confirmTimeout`, then
    /// gets `.indeterminate` while the write goes on (applied if the group commits it). With `warm`, the state
    /// it followed is the start (else the checkpoint). The store closes `log` when it closes.
    package static func open(directory: String, options: StoreOptions, log: WriteAheadLog,
                             writeGate: @escaping @Sendable () -> QueueError?, confirmTimeout: Duration? = nil,
                             warm: StoreFollower? = nil) async throws(QueueError) -> QueueStore {
        let fileSystem: any FileSystem = PosixFileSystem()
        let (store, salvage) = try await onOwnThread { () throws(QueueError) in
            let state: StoreState
            var checkpointOnDisk: UInt64?
            do throws(QueueError) {
                do throws(WALError) { try fileSystem.createDirectoryDurably(directory) } catch {
                    throw QueueError.fileOperation(error, doing: "opening the store")
                }
                if let followed = warm?.take() {
                    (state, checkpointOnDisk) = (followed.state, followed.checkpointLSN)
                } else {
                    state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
                }
            } catch {
                try? log.close()
                throw error
            }
            return try build(directory: directory, options: options, fileSystem: fileSystem, log: log, state: consume state,
                             checkpointOnDisk: checkpointOnDisk, checkpointTime: 0, logTime: 0, writeGate: writeGate,
                             confirmTimeout: confirmTimeout)
        }
        return try await start(store, salvage: salvage)
    }

    /// The asynchronous part of opening: the session's start record, and a checkpoint of what salvage dropped.
    private static func start(_ store: QueueStore, salvage: SalvageReport?) async throws(QueueError) -> QueueStore {
        do {
            // Not gated: a new leader's store waits here until its group can commit again.
            _ = try await store.perform([.sessionStart(time: store.options.clock.wallMilliseconds)], gated: false)
        } catch {
            try? store.log.close()
            throw error
        }
        store.telemetry.opened(store.openReport)
        // What salvage dropped is recorded at once in a checkpoint (until then every open drops it again).
        if let salvage, !salvage.droppedMessages.isEmpty || !salvage.droppedHalfMessages.isEmpty {
            do {
                try await onOwnThread { () throws(WALError) in try store.writeCheckpoint(truncate: false) }
            } catch {
                try? await store.shutdown()
                throw QueueError.fileOperation(error, doing: "checkpointing after salvage")
            }
        }
        store.startMaintenance()
        return store
    }

    /// The blocking part of `open`: the checkpoint, the log's recovery and the replay.
    private static func load(directory: String, options: StoreOptions,
                             fileSystem: any FileSystem) throws(QueueError) -> (QueueStore, SalvageReport?) {
        let log: WriteAheadLog
        var clock = PhaseClock()
        var sinceStart = PhaseClock()
        // The log need not checksum the segments the checkpoint covers (reads still verify them).
        do { try fileSystem.createDirectoryDurably(directory) } catch {
            throw QueueError.fileOperation(error, doing: "opening the store")
        }
        func openLog(verifyingFrom lsn: LSN) throws(QueueError) -> WriteAheadLog {
            do {
                return try WriteAheadLog.open(directory: "\(directory)/wal", options: StoreTelemetry.logOptions(options),
                                              fileSystem: fileSystem, verifyingFrom: lsn)
            } catch { throw QueueError.fileOperation(error, doing: "opening the store") }
        }
        guard fileSystem.servesConcurrentCallers else {
            let state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
            let checkpointTime = clock.lap()
            log = try openLog(verifyingFrom: LSN(state.appliedLSN + 1))
            return try build(directory: directory, options: options, fileSystem: fileSystem, log: log, state: consume state,
                             checkpointTime: checkpointTime, logTime: clock.lap(), loadTime: sinceStart.lap(), writeGate: nil)
        }
        // The checkpoint is decoded on a thread of its own while the log recovers on this one: neither needs the
        // other but for the LSN the checkpoint covers, which its header says (and the decode confirms, below).
        let covered = Checkpoint.peekCoveredLSN(directory: directory, fileSystem: fileSystem)
        let (loaded, opened) = alongside({ () throws(QueueError) -> (StoreState, Double) in
            var clock = PhaseClock()
            let state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
            return (state, clock.lap())
        }, { () throws(QueueError) -> (WriteAheadLog, Double) in
            var clock = PhaseClock()
            return (try openLog(verifyingFrom: LSN(covered + 1)), clock.lap())
        })
        let state: StoreState, checkpointTime: Double, logTime: Double
        do throws(QueueError) {
            (state, checkpointTime) = try loaded.get()
        } catch {
            if case .success(let (log, _)) = opened { try? log.close() }
            throw error
        }
        (log, logTime) = try opened.get()
        guard state.appliedLSN == covered else {
            // The header read alone disagreed with the file's decode (it cannot, unless the file changed between
            // the two reads): open the log again, trusting only what the decoded checkpoint covers.
            try? log.close()
            var again = PhaseClock()
            let reopened = try openLog(verifyingFrom: LSN(state.appliedLSN + 1))
            return try build(directory: directory, options: options, fileSystem: fileSystem, log: reopened,
                             state: consume state, checkpointTime: checkpointTime, logTime: logTime + again.lap(),
                             loadTime: sinceStart.lap(), writeGate: nil)
        }
        return try build(directory: directory, options: options, fileSystem: fileSystem, log: log, state: consume state,
                         checkpointTime: checkpointTime, logTime: logTime, loadTime: sinceStart.lap(), writeGate: nil)
    }

    /// Replays `log` after the checkpoint's `state` and makes the store (closing `log` if that fails).
    /// `checkpointOnDisk`: what the checkpoint file covers, when `state` is not the file's (a follower's copy
    /// runs ahead of it): segments are deleted only below what the file covers.
    private static func build(directory: String, options: StoreOptions, fileSystem: any FileSystem, log: WriteAheadLog,
                              state checkpointed: consuming StoreState, checkpointOnDisk: UInt64? = nil,
                              checkpointTime: Double, logTime: Double, loadTime: Double = 0,
                              writeGate: (@Sendable () -> QueueError?)?,
                              confirmTimeout: Duration? = nil) throws(QueueError) -> (QueueStore, SalvageReport?) {
        var clock = PhaseClock()
        // Moved, not copied: a copy would share every queue's entries with `checkpointed`, and the replay's
        // first append to each queue would then copy all of them (a million entries: a quarter of the open).
        var state = consume checkpointed
        let covered = state.appliedLSN
        let replay: StoreLoader.Replay
        let salvage: SalvageReport?
        do {
            try StoreLoader.checkContinuity(checkpoint: covered, logFirst: log.firstLSN, logEnd: log.durableLSN)
            replay = try StoreLoader.replay(into: &state, through: log.durableLSN) { from, onLost, body in
                try log.forEachRecord(from: from, onLost: onLost, body)
            }
            salvage = StoreLoader.dropLost(log.recoveryReport.lostLSNs, uncertain: replay.uncertain, from: &state)
        } catch {
            try? log.close()
            throw error
        }
        let replayed = replay.records, replayedBytes = replay.bytes
        var report = OpenReport(log: log.recoveryReport, checkpointLSN: LSN(checkpointOnDisk ?? covered), replayedRecords: replayed,
                                replayedBytes: replayedBytes)
        report.checkpointMilliseconds = checkpointTime
        report.logOpenMilliseconds = logTime
        report.loadMilliseconds = loadTime
        report.replayMilliseconds = clock.lap()
        report.salvage = salvage
        let store = QueueStore(directory: directory, options: options, log: log, fileSystem: fileSystem,
                               state: state, report: report, writeGate: writeGate, confirmTimeout: confirmTimeout)
        return (store, salvage)
    }

    private init(directory: String, options: StoreOptions, log: WriteAheadLog, fileSystem: any FileSystem,
                 state: StoreState, report: OpenReport, writeGate: (@Sendable () -> QueueError?)?,
                 confirmTimeout: Duration?) {
        self.directory = directory
        self.writeGate = writeGate
        self.confirmTimeout = confirmTimeout
        self.options = options
        self.log = log
        self.fileSystem = fileSystem
        self.openReport = report
        self.telemetry = StoreTelemetry(options: options, directory: directory)
        self.cache = BodyCache(capacityBytes: options.bodyCacheBytes)
        var core = Core(state: state, nextApply: log.durableLSN.rawValue + 1)
        core.idsPerRecord = max(1, (options.log.recordBytesMax - 64) / 8)
        core.checkpointLSN = report.checkpointLSN.rawValue
        core.clock = options.clock
        core.logBytesAtCheckpoint = log.counters.bytesUncompressed
        core.checkpointBytes = Checkpoint.fileBytes(directory: directory, fileSystem: fileSystem)
        self.core = Mutex(core)
    }

    /// A store dropped without `close` would leave its log's threads and files open: say so loudly, and
    /// close the log (its unsettled deliveries go back at the next open, as after a crash). The close waits for
    /// a final sync, so it runs on a thread of its own: the last reference may well be dropped on a
    /// cooperative thread.
    deinit {
        guard !core.withLock({ $0.closed }), !log.isClosed else { return }
        telemetry.logger.error("a QueueStore was dropped without close(); closing its log now (call close() or shutdown())")
        maintenanceTask.withLock { $0?.cancel() }
        let log = self.log
        Thread.detachNewThread { try? log.close() }
    }

    /// Closes the store without blocking the calling thread (the final sync and checkpoint run on a thread of
    /// their own), so that a task on Swift's cooperative pool, or a service's `run`, can await it.
    public func shutdown() async throws(QueueError) {
        try await onOwnThread { () throws(QueueError) in try self.close() }
    }

    /// Stops maintenance, ends every consumer, waits for what is in flight, writes a checkpoint and closes the
    /// log. Unsettled deliveries go back to their queues at the next open. Blocks the calling thread for the
    /// final sync and checkpoint; from async code prefer `shutdown()`.
    public func close() throws(QueueError) {
        let task = maintenanceTask.withLock { t -> Task<Void, Never>? in defer { t = nil }; return t }
        task?.cancel()
        var actions = Actions()
        let wasClosed = core.withLock { c -> Bool in
            defer { c.closed = true }
            for consumer in c.consumers.values { actions.finished.append((consumer.channel, nil)) }
            for waiters in c.streamWaiters.values { actions.wakeups.append(contentsOf: waiters) }
            c.streamWaiters.removeAll()
            c.consumers.removeAll()
            for id in c.runtimes.keys { c.runtimes[id]?.consumers.removeAll() }
            return c.closed
        }
        run(actions)
        guard !wasClosed else { return }
        do { try log.close() } catch { throw QueueError.from(error) }
        if core.withLock({ $0.failure }) == nil {
            do { try writeCheckpoint(truncate: false) } catch {
                throw QueueError.fileOperation(error, doing: "writing the final checkpoint")
            }
        }
    }

    // MARK: - Queues

    /// Declares a queue; declaring an existing one with the same options does nothing.
    /// - Throws: `.mismatchedOptions` when it exists with other options.
    public func declareQueue(_ name: String, options: QueueOptions = QueueOptions()) async throws(QueueError) {
        guard !name.isEmpty, name.utf8.count <= 255 else {
            throw QueueError(.invalidArgument, "a queue name is 1 to 255 bytes")
        }
        try options.validate()
        let exists: Bool = try core.withLock { c throws(QueueError) in
            try c.usable()
            if let id = c.state.queueIDs[name], let existing = c.state.queues[id] {
                guard existing.options == options else {
                    throw QueueError(.mismatchedOptions, "queue '\(name)' exists with other options")
                }
                return true
            }
            if let id = c.transientIDs[name], let existing = c.runtimes[id] {
                guard existing.options == options else {
                    throw QueueError(.mismatchedOptions, "queue '\(name)' exists with other options")
                }
                return true
            }
            if !options.durable {
                let id = c.nextTransientID
                c.nextTransientID += 1
                c.transientIDs[name] = id
                c.runtimes[id] = QueueRuntime(id: id, name: name, options: options)
                return true
            }
            return false
        }
        if !exists { _ = try await perform([.declareQueue(name: name, options: options)]) }
    }

    /// Deletes a queue and its messages; its consumers end.
    public func deleteQueue(_ name: String) async throws(QueueError) {
        var actions = Actions()
        let durableID: UInt64? = try core.withLock { c throws(QueueError) in
            try c.usable()
            let (id, durable) = try c.queue(named: name)
            if durable { return id }
            c.transientIDs[name] = nil
            c.dropRuntime(id, &actions)
            return nil
        }
        run(actions)
        if let durableID { _ = try await perform([.deleteQueue(queue: durableID)]) }
    }

    /// Every queue with its counts, by name.
    public func queues() -> [QueueInfo] {
        core.withLock { c in
            var infos: [QueueInfo] = []
            for q in c.state.queues.values {
                let rt = c.runtimes[q.id]
                infos.append(QueueInfo(name: q.name, durable: true, ready: q.readyCount + (rt?.lane.count ?? 0),
                                       unacked: q.unacked.count + (rt?.laneUnacked ?? 0),
                                       consumers: rt?.consumers.count ?? 0, deadLettered: q.deadLettered,
                                       liveBytes: q.liveBytes))
            }
            for (name, id) in c.transientIDs {
                guard let rt = c.runtimes[id] else { continue }
                infos.append(QueueInfo(name: name, durable: false, ready: rt.lane.count, unacked: rt.laneUnacked,
                                       consumers: rt.consumers.count, deadLettered: 0, liveBytes: 0))
            }
            return infos.sorted { $0.name < $1.name }
        }
    }

    /// The named queue's counts, as `queues()` gives them; nil when no queue has that name.
    public func queueInfo(_ name: String) -> QueueInfo? { queues().first { $0.name == name } }

    // MARK: - Publishing

    /// Publishes one message and returns its id once it is durable (persistent messages on durable queues:
    /// after the `fdatasync` that covers it) or enqueued (transient messages or queues: memory only, lost on
    /// restart).
    /// - Throws: `.notFound`, `.queueFull` (`maxLength` with `.rejectPublish`), `.logFailed`.
    @discardableResult
    public func publish(to queue: String, _ message: Message, persistent: Bool = true) async throws(QueueError) -> MessageID {
        let id: UInt64
        switch try resolvePublish(queue, message, persistent: persistent) {
        case .transient(let messageID): return MessageID(rawValue: messageID)
        case .durable(let queueID): id = queueID
        }
        let effect = try await perform([.publish(queue: id, time: options.clock.wallMilliseconds, headers: message.headers,
                                                 body: message.body)])
        guard case .published(let messageID?) = effect else {
            if core.withLock({ $0.state.queues[id] }) == nil {
                throw QueueError(.notFound, "queue '\(queue)' was deleted")
            }
            throw QueueError(.queueFull, "queue '\(queue)' is at its maxLength")
        }
        return MessageID(rawValue: messageID)
    }

    /// A publisher in confirm mode: many publishes in flight, confirms as an `AsyncSequence`.
    public func publisher() -> Publisher { Publisher(store: self) }

    /// A publisher in confirm mode that holds at most `maxUnconfirmed` publishes unconfirmed: `publish` waits
    /// for a confirm to free room, and the confirm resumes it directly (no task reading `confirms` in
    /// between), which keeps a producer's window full with one hand-off per confirm.
    /// - Throws: `.invalidArgument` unless `maxUnconfirmed` is at least 1.
    public func publisher(maxUnconfirmed: Int) throws(QueueError) -> Publisher {
        guard maxUnconfirmed >= 1 else {
            throw QueueError(.invalidArgument, "maxUnconfirmed is at least 1 (got \(maxUnconfirmed))")
        }
        return Publisher(store: self, maxUnconfirmed: maxUnconfirmed)
    }

    private enum PublishTarget { case durable(UInt64), transient(UInt64) }

    /// Finds the queue; a transient message (or any message of a transient queue) is enqueued right here.
    private func resolvePublish(_ queue: String, _ message: Message, persistent: Bool) throws(QueueError) -> PublishTarget {
        try checkFits(message)
        var actions = Actions()
        let target: PublishTarget = try core.withLock { c throws(QueueError) in
            try c.usable()
            let (id, durable) = try c.queue(named: queue)
            if durable && persistent { return .durable(id) }
            _ = try c.queueWithRuntime(named: queue)
            let mid = c.nextTransientID
            c.nextTransientID += 1
            c.runtimes[id]?.lane.append(TransientMessage(id: mid, message: message, deliveries: 0))
            c.dispatch(id, &actions)
            return .transient(mid)
        }
        run(actions)
        return target
    }

    /// The id of a durable queue, for operations that only durable queues take (`purpose` names them in the
    /// error for a transient one).
    func durableQueueID(_ name: String, for purpose: String) throws(QueueError) -> UInt64 {
        try core.withLock { c throws(QueueError) in
            try c.usable()
            let (id, durable) = try c.queue(named: name)
            guard durable else { throw QueueError(.invalidArgument, "queue '\(name)' is transient: \(purpose) need a durable queue") }
            return id
        }
    }

    /// Throws `.invalidArgument` when the message cannot fit one log record (with room for the largest
    /// record header: a stamped or transactional publish).
    func checkFits(_ message: Message) throws(QueueError) {
        let headerBytes = message.headers.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
        guard message.body.count <= options.log.recordBytesMax - 96 - headerBytes else {
            throw QueueError(.invalidArgument, "a message of \(message.body.count) bytes does not fit one log record "
                             + "(recordBytesMax \(options.log.recordBytesMax))")
        }
    }

    func publishWindowed(to queue: String, _ message: Message, persistent: Bool, publisher: PublisherCore,
                         wait: Bool) async throws(QueueError) -> UInt64 {
        try await publisher.takeRoom(wait: wait)
        let target: PublishTarget
        do {
            target = try resolvePublish(queue, message, persistent: persistent)
        } catch {
            #if !QUEUE_BROKEN_WINDOW_ROOM_KEPT_ON_REFUSAL  // (harness check builds only: the room stays taken)
            publisher.returnRoom()
            #endif
            throw error
        }
        let sequence = publisher.nextSequenceNumber()
        guard case .durable(let id) = target else {
            publisher.resolve(sequence, .success(()))
            return sequence
        }
        let record = StoreRecord.publish(queue: id, time: options.clock.wallMilliseconds, headers: message.headers,
                                         body: message.body)
        do {
            try await submit(Submission(records: [record], intent: .confirm(publisher, sequence: sequence)), wait: wait)
        } catch {
            publisher.resolve(sequence, .failure(error))
            if error.code == .pendingFull { throw error }
        }
        return sequence
    }

    // MARK: - Consuming

    /// Starts a consumer on `queue` that holds at most `prefetch` (1 to 65,535) unacked deliveries.
    public func consume(queue: String, prefetch: Int = 100) throws(QueueError) -> Consumer {
        guard (1...65_535).contains(prefetch) else {
            throw QueueError(.invalidArgument, "prefetch is 1 to 65,535 (as in AMQP)")
        }
        var actions = Actions()
        let channel = DeliveryChannel()
        let cid: UInt32 = try core.withLock { c throws(QueueError) in
            try c.usable()
            let (id, _) = try c.queueWithRuntime(named: queue)
            let cid = c.nextConsumerID
            c.nextConsumerID += 1
            c.consumers[cid] = ConsumerRuntime(id: cid, queue: id, prefetch: prefetch, channel: channel)
            c.runtimes[id]?.consumers.append(cid)
            c.dispatch(id, &actions)
            return cid
        }
        run(actions)
        return Consumer(queue: queue, prefetch: prefetch, id: cid, channel: channel, store: self)
    }

    func cancelConsumer(_ cid: UInt32) {
        var actions = Actions()
        core.withLock { $0.cancel(cid, &actions) }
        run(actions)
    }

    func settle(consumer cid: UInt32, tag: UInt64, multiple: Bool, as kind: Core.SettleKind) async throws(QueueError) {
        guard let submission = try claimForSettle(consumer: cid, tag: tag, multiple: multiple, as: kind),
              case .settle(let cid, let tags, _) = submission.intent else { return }
        let records = submission.records
        do {
            _ = try await perform(records, afterAppend: { [self] in dispatchAfterSettle(consumer: cid) }) { c in
                Submission(records: records, intent: .settle(consumer: cid, tags: tags, reply: c))
            }
        } catch where error.code == .notEnoughReplicas {
            // Refused before it was written: the deliveries are out with the consumer again, to ack later.
            releaseClaims(tags, of: cid)
            throw error
        }
    }

    /// `settle` without waiting for durability: the deliveries are claimed and their record appended here
    /// (the next group commit makes it durable), or nothing is settled and the call throws.
    func settleWithoutWaiting(consumer cid: UInt32, tag: UInt64, multiple: Bool,
                              as kind: Core.SettleKind) throws(QueueError) {
        guard let submission = try claimForSettle(consumer: cid, tag: tag, multiple: multiple, as: kind),
              case .settle(let cid, let tags, _) = submission.intent else { return }
        do throws(QueueError) {
            guard try tryAppend(RecordsToAppend(submission.records), submission) else {
                throw QueueError(.pendingFull, "the store's pending buffer is full: nothing was settled; settle again "
                                 + "after confirms, or with ack or nack, which wait for room")
            }
        } catch {
            // Not written: the deliveries are out with the consumer again, to settle later.
            #if !QUEUE_BROKEN_NO_WAIT_SETTLE_KEEPS_CLAIM  // (harness check builds only: they stay claimed)
            releaseClaims(tags, of: cid)
            #endif
            throw error
        }
        dispatchAfterSettle(consumer: cid)
    }

    /// Claims a consumer's deliveries for a settle; returns the submission of their record, nil when none of
    /// them is durable (transient deliveries are settled here).
    private func claimForSettle(consumer cid: UInt32, tag: UInt64, multiple: Bool,
                                as kind: Core.SettleKind) throws(QueueError) -> Submission? {
        var actions = Actions()
        let submission: Submission? = try core.withLock { c throws(QueueError) in
            try c.usable()
            let tags = try c.tagsToSettle(tag, multiple: multiple, of: cid)
            return c.claim(tags, of: cid, as: kind, reason: .requeued, &actions)
        }
        run(actions)
        return submission
    }

    /// Once a settle's record is appended: the settled deliveries no longer count against prefetch, and the
    /// next checkout follows the settlement into the log (a requeue first, so its messages are taken first),
    /// often in one group.
    private func dispatchAfterSettle(consumer cid: UInt32) {
        var actions = Actions()
        core.withLock { c in
            if let queue = c.consumers[cid]?.queue { c.dispatch(queue, &actions) }
        }
        run(actions)
    }

    /// Gives claimed deliveries back to their consumer (their settle was not written).
    private func releaseClaims(_ tags: [UInt64], of cid: UInt32) {
        var actions = Actions()
        core.withLock { $0.releaseClaims(tags, of: cid, &actions) }
        run(actions)
    }

    /// The delivery's message, from the cache or the log (verified against its checksum).
    /// `resolve`, with the log read of a cache miss off the cooperative pool (`bodyReads`): a consumer's task never waits for the
    /// disk on a cooperative thread. A miss reads ahead (see `readMessage`), so most deliveries of a backlog are
    /// hits, resolved right here.
    func resolveOffPool(_ pending: PendingDelivery, consumer cid: UInt32) async throws(QueueError) -> Delivery {
        if pending.transient != nil { return try resolve(pending, consumer: cid) }
        if let cached = cache.message(at: pending.entry.bodyLSN) { return delivery(pending, cached) }
        #if QUEUE_BROKEN_DELIVERY_READS_ON_POOL  // BROKEN ON PURPOSE (harness check builds only)
        if cid > 0 { return try resolve(pending, consumer: cid) }
        #endif
        return try await offPool { () throws(QueueError) in try self.resolve(pending, consumer: cid) }
    }

    /// `readMessage`, off the cooperative pool unless the cache holds it.
    func readMessageOffPool(at lsn: UInt64) async throws(QueueError) -> Message {
        if let m = cache.message(at: lsn) { return m }
        return try await offPool { () throws(QueueError) in try self.readMessage(at: lsn) }
    }

    private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws(QueueError) -> T) async throws(QueueError) -> T {
        let result: Result<T, QueueError> = await withCheckedContinuation { c in
            bodyReads.async { c.resume(returning: Result { () throws(QueueError) in try body() }) }
        }
        return try result.get()
    }

    func resolve(_ pending: PendingDelivery, consumer cid: UInt32) throws(QueueError) -> Delivery {
        let e = pending.entry
        let message: Message
        if let transient = pending.transient {
            message = transient
        } else {
            do {
                message = try readMessage(at: e.bodyLSN)
            } catch where error.code == .notFound {
                // Relocated and its old copy reclaimed since the checkout: look up where it is now.
                let now: UInt64? = core.withLock { c in
                    c.consumers[cid].flatMap { c.state.queues[$0.queue]?.unacked[e.id]?.entry.bodyLSN }
                }
                guard let now else { throw error }
                message = try readMessage(at: now)
            }
        }
        return delivery(pending, message)
    }

    private func delivery(_ pending: PendingDelivery, _ message: Message) -> Delivery {
        let e = pending.entry
        return Delivery(tag: DeliveryTag(rawValue: pending.tag), messageID: MessageID(rawValue: e.id), message: message,
                        deliveryCount: Int(e.deliveries), deadLetterReason: DeadLetterReason(rawValue: e.deathReason))
    }

    /// The message in the record at `lsn`; reading the log fills the cache with the records that follow too
    /// (through the end of the frame that holds the 128th).
    func readMessage(at lsn: UInt64) throws(QueueError) -> Message {
        if let m = cache.message(at: lsn) { return m }
        var found: Message?
        var lostHere = false
        do {
            // At least the next 127 records, and the rest of the frame they end in: it is decompressed anyway.
            let ahead = log.recordsInFrame(containing: LSN(lsn + 127)).map { $0.upperBound.rawValue - 1 } ?? lsn + 127
            let end = min(max(lsn + 127, ahead), log.durableLSN.rawValue)
            try log.forEachRecord(from: LSN(lsn), through: LSN(max(end, lsn)), onLost: { lost in
                if lost.contains(lsn) { lostHere = true }
            }) { at, bytes in
                if let m = StoreRecord.message(in: bytes) {
                    if at.rawValue == lsn { found = m }
                    cache.insert(m, at: at.rawValue)
                }
                return true
            }
        } catch let error as WALError where error.code == .lsnOutOfRange {
            throw QueueError(.notFound, "the record at LSN \(lsn) is no longer in the log", log: error)
        } catch let error as WALError {
            throw QueueError.from(error)
        } catch {
            preconditionFailure("\(error)")
        }
        if lostHere {
            throw QueueError(.notFound, "the record at LSN \(lsn) was lost to damage; salvage took it out of the log")
        }
        guard let found else { throw QueueError(.corruption, "LSN \(lsn) does not hold a message record") }
        return found
    }

    // MARK: - Observing

    /// The log's size on disk against the live data it holds.
    public var diskUsage: DiskUsage {
        let segments = log.segments.count, prepared = log.preparedSegments
        let (live, checkpoint, checkpointBytes) = core.withLock { ($0.state.liveBytes, $0.checkpointLSN, $0.checkpointBytes) }
        return DiskUsage(logBytes: (segments + prepared) * options.log.segmentBytes, segments: segments,
                         preparedSegments: prepared, liveBytes: live, checkpointLSN: LSN(checkpoint),
                         checkpointBytes: checkpointBytes, firstLSN: log.firstLSN,
                         lastLSN: log.durableLSN)
    }

    /// The write-path counters of the store's log since the store was opened.
    public var logCounters: LogCounters.Snapshot { log.counters }

    // MARK: - Submitting records

    /// Appends `records` as one submission and returns the effect of the last once all are durable and applied.
    /// `gated: false` skips the write gate (a new leader's session start, which waits for its commit instead).
    func perform(_ records: [StoreRecord], gated: Bool = true) async throws(QueueError) -> StoreState.Effect {
        try await perform(records, gated: gated) { Submission(records: records, intent: .reply($0)) }
    }

    /// `afterAppend` runs once the records are in the log's pending buffer, before they are durable.
    func perform(_ records: [StoreRecord], encoded: RecordsToAppend? = nil, gated: Bool = true,
                 afterAppend: (@Sendable () -> Void)? = nil, _ makeSubmission: @escaping @Sendable (Reply) -> Submission)
        async throws(QueueError) -> StoreState.Effect {
        let encoded = encoded ?? RecordsToAppend(records)
        // The confirm timeout counts from the call: read once, before the first attempt to append, so that a
        // clock that moves on during the append or a wait for room is counted.
        let deadline = confirmTimeout.map { options.clock.monotonic.advanced(by: $0) }
        while true {
            // No usability check here: the log itself refuses appends once it failed or closed.
            let outcome = await withUnsafeContinuation { (c: Reply) in
                do throws(QueueError) {
                    // Only if the embedder turned `LogOptions.commitOnCallerWhenIdle` on (it blocks this
                    // thread for a sync; off by default) does an idle log commit and complete this on our
                    // thread, inside the call: the reply then resumes `c` before this closure returns, which
                    // continuations allow.
                    let submission = makeSubmission(c)
                    if try tryAppend(encoded, submission, onCaller: true, gated: gated) {
                        afterAppend?()
                        #if !REPLICATION_BROKEN_NO_CONFIRM_TIMEOUT  // (harness check builds only: waits without bound)
                        // Only writes the gate let through: the ungated one (a new leader's session start) waits
                        // for its group, and a store that has not opened has no callers to answer.
                        if gated, let deadline {
                            replyDeadlines.watch(submission, until: deadline)
                        }
                        #endif
                    } else {
                        c.resume(returning: .success(nil))
                    }
                } catch {
                    c.resume(returning: .failure(error))
                }
            }
            if let effect = try outcome.get() { return effect }
            await log.waitForRoom(totalBytes: encoded.totalBytes, count: encoded.count)
        }
    }

    /// Appends a submission whose outcome goes to its intent; with `wait`, suspends while the log is full,
    /// else throws `.pendingFull`.
    func submit(_ submission: Submission, wait: Bool, gated: Bool = true) async throws(QueueError) {
        let encoded = RecordsToAppend(submission.records)
        while true {
            try core.withLock { c throws(QueueError) in try c.usable() }
            if try tryAppend(encoded, submission, gated: gated) { return }
            guard wait else { throw QueueError(.pendingFull, "the store's pending buffer is full; retry after confirms") }
            await log.waitForRoom(totalBytes: encoded.totalBytes, count: encoded.count)
        }
    }

    /// Hands records to the log, their confirm to go to `submission`; false when the log is full.
    /// `onCaller`: the log may commit and confirm them on this thread when it is idle (never from inside a
    /// confirm: follow-up submissions go through the log's threads, so commits do not nest).
    private func tryAppend(_ records: RecordsToAppend, _ submission: Submission, onCaller: Bool = false,
                           gated: Bool = true) throws(QueueError) -> Bool {
        #if !QUEUE_BROKEN_IGNORES_WRITE_GATE  // (harness check builds only: a replicated store writes when it may not)
        if gated, let writeGate, let refusal = writeGate() { throw refusal }
        #endif
        do {
            return try log.tryAppend(recordSizes: records.sizes, callbackOnCaller: onCaller,
                                     write: { index, slot in records.write(index, into: slot) },
                                     sink: self, token: submission)
        } catch {
            // A store that stopped serving (a failed log, a leader that stepped down) says why, rather than
            // that its log is closed.
            if error.code == .closed, let failure = core.withLock({ $0.failure }) { throw failure }
            throw QueueError.from(error)
        }
    }

    /// Follow-up records found under the lock (checkouts, returns): appended without waiting when there is
    /// room, else from a task that waits for it. Past a replicated leader's write gate: they follow from what
    /// the group committed and no caller waits to be told that nothing was written, so while the in-sync set
    /// is too small they wait for it to grow, as a new term's session start does. Refused, they would stop
    /// the store for the rest of its term (a failed follow-up means a failed log).
    private func submitDetached(_ submission: Submission) {
        #if QUEUE_BROKEN_GATES_FOLLOW_UPS  // BROKEN ON PURPOSE (harness check builds only)
        let gated = true
        #else
        let gated = false
        #endif
        do {
            if try tryAppend(RecordsToAppend(submission.records), submission, gated: gated) { return }
        } catch {
            var actions = Actions()
            core.withLock { $0.failed(submission, error, &actions) }
            run(actions)
            return
        }
        Task { [self] in
            do throws(QueueError) {
                try await submit(submission, wait: true, gated: gated)
            } catch {
                var actions = Actions()
                core.withLock { $0.failed(submission, error, &actions) }
                run(actions)
            }
        }
    }

    /// The log's completions, a release at a time: applied in LSN order under one acquisition of the lock,
    /// then acted on outside it.
    package func complete(_ submissions: [(firstLSN: LSN, token: AnyObject)], failure: WALError?) {
        var actions = Actions()
        core.withLock { c in
            for (lsn, token) in submissions {
                // The log hands back the tokens `tryAppend` gave it, which are all `Submission`s (checked in
                // debug builds).
                let submission = unsafeDowncast(token, to: Submission.self)
                if let failure {
                    c.failed(submission, QueueError.from(failure), &actions)
                } else {
                    c.confirmed(submission, at: lsn.rawValue, &actions)
                }
            }
        }
        if confirmTimeout != nil { replyDeadlines.forgetAnswered() }
        run(actions)
    }

    func run(_ actions: Actions) {
        if !actions.cached.isEmpty { cache.insert(actions.cached) }
        if !actions.uncached.isEmpty { cache.remove(actions.uncached) }
        for s in actions.submissions { submitDetached(s) }
        for (reader, delivery) in actions.readers { reader.resume(returning: .delivery(delivery)) }
        for (channel, failure) in actions.finished { channel.finish(failure: failure) }
        for (p, seq, result) in actions.confirms { p.resolve(seq, result) }
        for w in actions.wakeups { w.resume() }
        for (c, result) in actions.replies {
            switch result {
            case .success(let effect): c.resume(returning: .success(effect))
            case .failure(let error): c.resume(returning: .failure(error))
            }
        }
    }
}

/// Records to append as one submission, and the bytes each takes in the log's pending batch: store records,
/// encoded straight into that batch (no array of their own in between), or records a transaction encoded
/// when they were added.
struct RecordsToAppend: Sendable {
    private enum Form: Sendable {
        case records([StoreRecord])
        case encoded([[UInt8]])
    }

    private let form: Form
    let sizes: [Int]

    init(_ records: [StoreRecord]) {
        form = .records(records)
        sizes = records.map(\.encodedBytes)
    }

    init(encoded: [[UInt8]]) {
        form = .encoded(encoded)
        sizes = encoded.map(\.count)
    }

    var count: Int { sizes.count }
    /// The bytes they take in the pending batch, with each record's length.
    var totalBytes: Int { sizes.reduce(0) { $0 + $1 + BatchPayload.lengthPrefixBytes } }

    /// Writes record `index` into its slot in the pending batch.
    func write(_ index: Int, into slot: UnsafeMutableRawBufferPointer) {
        switch form {
        case .records(let records): records[index].encode(into: slot)
        case .encoded(let encoded): encoded[index].withUnsafeBytes { slot.copyMemory(from: $0) }
        }
    }
}

/// A submission crosses into the log's completion and into tasks; its continuations are resumed exactly once,
/// by the store, under the rules of `Core`.
extension Submission: @unchecked Sendable {}

/// Milliseconds between laps of a monotonic clock.
struct PhaseClock {
    private var last = ContinuousClock.now

    mutating func lap() -> Double {
        let now = ContinuousClock.now
        defer { last = now }
        let (seconds, attoseconds) = (now - last).components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

