import Foundation
import LogFormat
import Synchronization

/// The write path's thread shell. Producers add records to a pending batch under a short lock. Two I/O
/// threads share the work: whoever is free takes the write token and the whole pending batch, encodes it
/// into frames and writes it (`SegmentWriter`); whoever is free when written records wait and no sync is in
/// flight runs one `fdatasync` covering everything written so far, then releases the waiters it proved
/// durable (`CommitLedger`).
///
/// Groups are as large as Little's law allows: by default one sync is in flight at a time, and what
/// arrives meanwhile joins the next group. Writing runs ahead of the sync: while a sync is in flight, the
/// other thread encodes and writes pending records once they fill `LogOptions.runAheadBytes`, so that
/// compression and the page-cache copy overlap the disk's work, and the next sync starts as soon as the
/// previous one returned, covering all of them.
///
/// Invariant: no waiter is completed successfully before an `fdatasync` that covers its records returned
/// and all earlier syncs returned without error. After any failed write or sync, nothing is confirmed again.
final class GroupCommitter: @unchecked Sendable {
    enum Admission { case accepted, full, failed(WALError) }

    private let options: LogOptions
    private let fileSystem: any FileSystem
    private let counters: LogCounters
    private let telemetry: LogTelemetry

    private let monitor = Monitor()
    /// I/O threads wait here for work (pending records, writes to sync, or the end).
    private let work: Monitor.Condition
    /// A segment roll waits here for the syncs in flight to drain.
    private let drained: Monitor.Condition
    private let roomFree: Monitor.Condition
    private let threadExited: Monitor.Condition

    // Guarded by monitor.
    private var pending: PendingBatch
    private var nextLSN: LSN
    private var ledger: CommitLedger<Waiter>
    private var stopping = false
    private var idleThreads = 0
    /// Held by the I/O thread that is encoding and writing a group; guards `writing` and `writer`.
    private var writeTokenHeld = false
    private var roomWaiters: [UnsafeContinuation<UInt64, any Error>] = []
    private var waiterArrays: [[Waiter]] = []
    private var liveThreads = 0
    private var sealed = false
    /// The file syncs go to: the active segment's, set after each group is written and before each roll's sync
    /// (a group may roll more than once), never while a sync is in flight.
    private var syncTarget: (fd: Int32, path: String)
    /// A follower's log: where the next shipped run must start (the end of what it accepted), and the epoch
    /// of the last frame it accepted (frames never go back to an older one).
    private var shippedEnd: (segmentID: SegmentID, offset: Int)
    private var shippedEpoch: UInt64

    /// Told after each group is written (outside the lock, on the writing thread): a leader ships it. Boxed:
    /// a closure kept directly as a `Mutex`'s value is re-wrapped in a reabstraction thunk on every
    /// `withLock` that passes it `inout`, so the chain, and each call's cost, grew with every group written.
    private let writeObserver = Mutex<WriteObserver?>(nil)

    private final class WriteObserver: Sendable {
        let call: @Sendable () -> Void
        init(_ call: @escaping @Sendable () -> Void) { self.call = call }
    }

    // Owned by the write-token holder.
    private var writing: PendingBatch
    private let writer: SegmentWriter

    /// `lastEpoch`: the epoch of the last frame in the log (0 when it has none), from which a follower's
    /// shipped frames may only go up.
    init(options: LogOptions, fileSystem: any FileSystem, counters: LogCounters, telemetry: LogTelemetry,
         writer: SegmentWriter, nextLSN: LSN, lastEpoch: UInt64 = 0) {
        self.options = options
        self.fileSystem = fileSystem
        self.counters = counters
        self.telemetry = telemetry
        self.writer = writer
        self.nextLSN = nextLSN
        ledger = CommitLedger(nextLSN: nextLSN, syncsInFlightMax: options.syncsInFlightMax,
                              replicatedThrough: options.confirmsWaitForReplicas ? LSN.none : nil)
        syncTarget = (writer.active.fd, writer.active.path)
        shippedEnd = (writer.active.segmentID, writer.active.writeOffset)
        shippedEpoch = lastEpoch
        let capacity = options.pendingBytesMax + options.frameBytesMax
        pending = PendingBatch(capacity: capacity, firstLSN: nextLSN)
        writing = PendingBatch(capacity: capacity, firstLSN: nextLSN)
        work = monitor.makeCondition()
        drained = monitor.makeCondition()
        roomFree = monitor.makeCondition()
        threadExited = monitor.makeCondition()

        liveThreads = options.threadless ? 0 : Self.ioThreads
        for i in 0..<liveThreads {
            let thread = Thread { [self] in
                Platform.nameCurrentThread("wal-io-\(i)")
                ioLoop()
            }
            thread.start()
        }
    }

    /// One thread syncs while the other writes ahead.
    private static let ioThreads = 2

    /// The highest LSN whose record is durable here (0 when none is).
    var durableLSN: LSN { monitor.withLock { ledger.durable } }
    /// The LSN after the last record accepted (appended, or taken from a leader), durable or not.
    var acceptedEnd: LSN { monitor.withLock { nextLSN } }
    /// The highest LSN that is confirmed: durable here and, replicated, on the in-sync replicas.
    var committedLSN: LSN { monitor.withLock { ledger.committed } }

    /// A replicated log: the in-sync replicas hold everything through `lsn` durably. Completes what that
    /// confirms.
    func replicasDurable(through lsn: LSN) {
        monitor.lock()
        let release = ledger.replicasDurable(through: lsn)
        if !release.isEmpty { completeUnlocked(release) }
        monitor.unlock()
    }

    /// Blocks until everything accepted is written and durable (or the log failed or is closing): a follower
    /// starting a new exchange says where its log ends, and that must be durable.
    func waitUntilIdle() {
        if options.threadless {
            monitor.withLock { while stepLocked() {} }
            return
        }
        monitor.withLock {
            while ledger.failure == nil && !stopping
                && (!pending.isEmpty || writeTokenHeld || ledger.syncsInFlight > 0 || ledger.hasUnsyncedWrites) {
                drained.wait()
            }
        }
    }

    /// Calls `observer` after every group written from now on (keep it short: it runs on a log thread that
    /// has more to write).
    func observeWrites(_ observer: (@Sendable () -> Void)?) {
        let boxed = observer.map(WriteObserver.init)
        writeObserver.withLock { $0 = boxed }
    }

    // MARK: - Producers

    /// Adds records to the pending batch, or says why not. `records` yields each record's bytes.
    func submit(count: Int, totalBytes: Int, completion: Completion, callbackOnCaller: Bool = false,
                _ records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void) -> Admission {
        let frameBytesMax = options.frameBytesMax, recordBytesMax = options.recordBytesMax
        return admit(count: count, totalBytes: totalBytes, completion: completion, callbackOnCaller: callbackOnCaller) { pending in
            let recordsBefore = pending.recordCount, bytesBefore = pending.payload.count
            var oversized: Int?
            records { record in
                guard oversized == nil else { return }
                guard record.count <= recordBytesMax else { oversized = record.count; return }
                pending.add(record, frameBytesMax: frameBytesMax)
            }
            // The log measures what it was given rather than trusting the caller's count and size: a submission
            // that does not match its description is taken out again and refused.
            return Self.refusal(oversized: oversized, recordBytesMax: recordBytesMax,
                                added: pending.recordCount - recordsBefore, declared: count,
                                addedBytes: pending.payload.count - bytesBefore, declaredBytes: totalBytes)
        }
    }

    /// Adds records of the sizes given, each laid out in place by `write` (the record's index, the bytes it
    /// must fill), or says why not. The sizes were checked against `recordBytesMax` by the caller.
    func submitInPlace(recordSizes: [Int], completion: Completion, callbackOnCaller: Bool = false,
                       write: (_ index: Int, _ into: UnsafeMutableRawBufferPointer) -> Void) -> Admission {
        let frameBytesMax = options.frameBytesMax
        let totalBytes = recordSizes.reduce(0) { $0 + $1 + BatchPayload.lengthPrefixBytes }
        return admit(count: recordSizes.count, totalBytes: totalBytes, completion: completion,
                     callbackOnCaller: callbackOnCaller) { pending in
            for (index, size) in recordSizes.enumerated() {
                pending.add(size: size, frameBytesMax: frameBytesMax) { write(index, $0) }
            }
            return nil
        }
    }

    /// Admits a submission of `count` records and `totalBytes` payload bytes: `layOut` adds them to the
    /// pending batch (under the lock) or returns why they are refused (they are then taken out again).
    private func admit(count: Int, totalBytes: Int, completion: Completion, callbackOnCaller: Bool,
                       layOut: (inout PendingBatch) -> WALError?) -> Admission {
        if options.isReplica {
            return .failed(WALError(.invalidArgument, "a follower's log takes only the frames its leader ships"))
        }
        if options.threadless, case .blocking = completion {
            preconditionFailure("a threadless log takes callback and async appends only: nothing would run the I/O a blocking append waits for")
        }
        monitor.lock()
        if let failure = ledger.failure { monitor.unlock(); return .failed(failure) }
        if stopping { monitor.unlock(); return .failed(WALError(.closed, "the log is closed")) }
        if !hasRoom(bytes: totalBytes, records: count) {
            monitor.unlock()
            return .full
        }
        let first = nextLSN
        let bytesBefore = pending.payload.count
        let mark = pending.mark
        if let refusal = layOut(&pending) {
            pending.rollBack(to: mark)
            monitor.unlock()
            return .failed(refusal)
        }
        nextLSN = first + UInt64(count)
        pending.waiters.append(Waiter(firstLSN: first, completion: completion))
        counters.appends.add(1, ordering: .relaxed)
        let idle = !writeTokenHeld && ledger.syncsInFlight == 0 && !ledger.hasUnsyncedWrites
        // A caller that blocks its own thread anyway (`appendAndWait`), or a callback that asked for it, writes
        // and syncs the group itself when the log is idle: that saves the two thread wake-ups of a hand-off.
        // Async appends never do (a cooperative thread is not ours to block); under load the I/O threads
        // commit as always (a caller among many could be descheduled mid-group).
        #if WAL_BROKEN_ASYNC_COMMITS_ON_CALLER
        let asyncInline = true  // BROKEN ON PURPOSE (harness check builds only): blocks a cooperative thread.
        #else
        let asyncInline = false
        #endif
        let inline: Bool = switch completion {
        case .blocking: true
        case .async: asyncInline
        case .callback, .sink: callbackOnCaller && options.commitOnCallerWhenIdle
        }
        if inline, idle, pending.waiters.count == 1, !stopping {
            writeOneGroup()
            if ledger.wantsSync { syncOnce() }
            // Whatever arrived meanwhile did not wake anyone (a sync was in flight): hand it on.
            let handOn = (!pending.isEmpty || ledger.wantsSync) && idleThreads > 0
            monitor.unlock()
            if handOn { work.signal() }
            return .accepted
        }
        // Wake an idle I/O thread only if it can start at once: the log is idle (the first record of a
        // group), or a sync is in flight and the batch just reached the run-ahead size. A busy thread picks
        // the batch up itself when it finishes.
        // With more than one sync allowed in flight, a thread that can start the next one is woken too.
        let canStartAnotherSync = options.syncsInFlightMax > 1 && bytesBefore == 0
            && ledger.syncsInFlight < ledger.syncsInFlightMax
        let wake = idleThreads > 0 && !writeTokenHeld
            && (idle ? bytesBefore == 0 : canStartAnotherSync || crossesRunAhead(from: bytesBefore, to: pending.payload.count))
        monitor.unlock()
        if wake { work.signal() }
        return .accepted
    }

    /// A follower's log: adds a verified run of its leader's frames to the pending batch, or says why not.
    /// The run must continue exactly what the log holds and has accepted (the same segment at the offset
    /// where its frames end, or the next segment's first frame; its first LSN the log's next), and its
    /// frames' epochs must lie between the last accepted frame's and `leaderEpoch`, the epoch of the leader
    /// the follower accepted (a deposed leader's frames carry an older one and are refused by the stream;
    /// no frame may claim a newer one). `completion` gets the run's first LSN once it is durable here.
    func submitShipped(_ run: ShippedFrames, _ verified: ShippedFrames.Verified, leaderEpoch: UInt64,
                       completion: Completion) -> Admission {
        guard options.isReplica else {
            return .failed(WALError(.invalidArgument, "only a follower's log takes shipped frames"))
        }
        monitor.lock()
        if let failure = ledger.failure { monitor.unlock(); return .failed(failure) }
        if stopping { monitor.unlock(); return .failed(WALError(.closed, "the log is closed")) }
        if let refusal = continuityRefusal(run, verified, leaderEpoch: leaderEpoch) {
            monitor.unlock()
            return .failed(refusal)
        }
        if !hasRoom(bytes: run.bytes.count, records: verified.recordCount) {
            monitor.unlock()
            return .full
        }
        let bytesBefore = pending.payload.count
        let idle = !writeTokenHeld && ledger.syncsInFlight == 0 && !ledger.hasUnsyncedWrites
        pending.addShipped(run, verified)
        nextLSN = verified.endLSN
        shippedEnd = (run.segmentID, run.offset + run.bytes.count)
        shippedEpoch = verified.lastEpoch
        pending.waiters.append(Waiter(firstLSN: verified.firstLSN, completion: completion))
        counters.appends.add(1, ordering: .relaxed)
        let wake = idleThreads > 0 && !writeTokenHeld
            && (idle ? bytesBefore == 0 : crossesRunAhead(from: bytesBefore, to: pending.payload.count))
        monitor.unlock()
        if wake { work.signal() }
        return .accepted
    }

    /// Why a verified run cannot follow what this log holds, or nil. Lock held.
    private func continuityRefusal(_ run: ShippedFrames, _ verified: ShippedFrames.Verified,
                                   leaderEpoch: UInt64) -> WALError? {
        let continues = run.segmentID == shippedEnd.segmentID && run.offset == shippedEnd.offset
        let startsNext = run.segmentID == shippedEnd.segmentID.next && run.offset == SegmentHeader.blockBytes
        guard continues || startsNext else {
            return WALError(.invalidArgument, "shipped frames refused: they start at segment \(run.segmentID) offset "
                            + "\(run.offset), this log continues at segment \(shippedEnd.segmentID) offset \(shippedEnd.offset)")
        }
        guard verified.firstLSN == nextLSN else {
            return WALError(.invalidArgument, "shipped frames refused: they start at LSN \(verified.firstLSN), this "
                            + "log continues at \(nextLSN)")
        }
        #if !WAL_BROKEN_REPLICA_IGNORES_EPOCH  // skipped only in harness check builds
        guard verified.firstEpoch >= shippedEpoch, verified.lastEpoch <= leaderEpoch else {
            return WALError(.staleEpoch, "shipped frames refused: epochs \(verified.firstEpoch)...\(verified.lastEpoch) "
                            + "do not lie between this log's last epoch \(shippedEpoch) and its leader's \(leaderEpoch)")
        }
        #endif
        return nil
    }

    private static func refusal(oversized: Int?, recordBytesMax: Int, added: Int, declared: Int,
                                addedBytes: Int, declaredBytes: Int) -> WALError? {
        if let oversized {
            return WALError(.recordTooLarge, "record of \(oversized) bytes exceeds recordBytesMax (\(recordBytesMax))")
        }
        guard added == declared, addedBytes == declaredBytes else {
            return WALError(.invalidArgument, "the submission declared \(declared) records of \(declaredBytes) bytes "
                            + "(with their 4-byte lengths) but added \(added) of \(addedBytes)")
        }
        return nil
    }

    private func crossesRunAhead(from before: Int, to after: Int) -> Bool {
        before < options.runAheadBytes && after >= options.runAheadBytes
    }

    /// Whether the pending batch can take `records` more records of `bytes` in all. An empty batch takes
    /// anything the record limits allow, so one oversized submission cannot wait forever. Lock held.
    private func hasRoom(bytes: Int, records: Int) -> Bool {
        pending.isEmpty || (pending.payload.count + bytes <= options.pendingBytesMax
                            && pending.recordCount + records <= options.pendingRecordsMax)
    }

    /// Parks an async producer until the writer takes the pending batch; resumed with `retryToken`.
    func waitForRoom(_ continuation: UnsafeContinuation<UInt64, any Error>, totalBytes: Int, records: Int) {
        monitor.lock()
        if hasRoom(bytes: totalBytes, records: records) || ledger.failure != nil || stopping {
            monitor.unlock()
            continuation.resume(returning: PendingBatch.retryToken)
            return
        }
        roomWaiters.append(continuation)
        monitor.unlock()
    }

    /// Blocks the calling thread until the pending batch has room for `totalBytes` in `records` records.
    func waitForRoomBlocking(totalBytes: Int, records: Int) {
        if options.threadless {
            // Nobody else will write the pending batch out.
            monitor.withLock {
                while !hasRoom(bytes: totalBytes, records: records) && ledger.failure == nil && !stopping && stepLocked() {}
            }
            return
        }
        monitor.withLock {
            while !hasRoom(bytes: totalBytes, records: records) && ledger.failure == nil && !stopping {
                roomFree.wait()
            }
        }
    }

    // MARK: - Closing

    /// Writes out what is pending, waits for its syncs, records a clean shutdown (a seal frame) and stops
    /// the threads. Throws the failure that stopped the log, if one did.
    func close() throws(WALError) {
        monitor.lock()
        stopping = true
        work.broadcast()
        roomFree.broadcast()
        let parked = roomWaiters
        roomWaiters.removeAll()
        while liveThreads > 0 { threadExited.wait() }
        if options.threadless { finishThreadless() }
        let failed = ledger.failure
        if ledger.unreleasedGroups > 0 {
            // Durable here but not confirmed by the in-sync replicas (a leader's log): these appends never
            // complete through this log. Whether they commit is for the next leader to decide.
            let abandoned = ledger.fail(WALError(.closed, "the log closed before its in-sync replicas confirmed "
                                                 + "these records; whether they commit is not known here"))
            completeUnlocked(abandoned)
        }
        monitor.unlock()
        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        writer.close()
        if let failed { throw failed }
    }

    // MARK: - Without threads (`LogOptions.threadless`)

    /// What an I/O thread would do next, on the caller's thread: with `write`, writes the pending batch; with
    /// `sync`, then runs one sync if written records wait for one, and completes what it proved durable
    /// (callbacks run here). Returns whether it did anything.
    func performIO(write: Bool, sync: Bool) -> Bool {
        precondition(options.threadless, "performIO is for a threadless log; its own threads do the I/O")
        monitor.lock()
        defer { monitor.unlock() }
        return !stopping && stepLocked(write: write, sync: sync)
    }

    /// One turn of `ioLoop` that never waits. Called and returns with the lock held.
    private func stepLocked(write: Bool = true, sync: Bool = true) -> Bool {
        var did = false
        if write && ledger.failure == nil && !pending.isEmpty && !writeTokenHeld {
            writeOneGroup()
            did = true
        }
        if sync && ledger.wantsSync {
            syncOnce()
            did = true
        }
        return did
    }

    /// A threadless log's close: what the I/O threads do once stopping, on the closing thread. Lock held.
    private func finishThreadless() {
        while ledger.failure == nil && stepLocked() {}
        if ledger.failure == nil && !sealed && !options.isReplica { sealed = true; writeSeal() }
    }

    // MARK: - I/O threads

    private func ioLoop() {
        monitor.lock()
        while true {
            if ledger.failure == nil && !pending.isEmpty && !writeTokenHeld
                && (ledger.syncsInFlight < ledger.syncsInFlightMax || pending.payload.count >= options.runAheadBytes) {
                writeOneGroup()
                continue
            }
            if ledger.wantsSync {
                syncOnce()
                continue
            }
            if stopping && (ledger.failure != nil
                            || (pending.isEmpty && ledger.syncsInFlight == 0 && !writeTokenHeld && !ledger.hasUnsyncedWrites)) {
                // A follower writes no seal of its own: its segments stay byte for byte its leader's.
                if ledger.failure == nil && !sealed && !options.isReplica { sealed = true; writeSeal() }
                break
            }
            idleThreads += 1
            work.wait()
            idleThreads -= 1
        }
        liveThreads -= 1
        work.broadcast()
        threadExited.broadcast()
        monitor.unlock()
    }

    /// Takes the write token and the pending batch, writes the batch, and records it in the ledger.
    /// Called and returns with the lock held.
    private func writeOneGroup() {
        writeTokenHeld = true
        swap(&pending, &writing)
        pending.reset(firstLSN: nextLSN)
        if let spare = waiterArrays.popLast() { pending.waiters = spare }
        // The watermark frames carry is what is confirmed, so that recovery treats damage below it as
        // corruption of confirmed data (on a replica too, whose copy of the frame is byte for byte this one).
        let durableAtWrite = ledger.committed
        let parked = roomWaiters
        roomWaiters.removeAll(keepingCapacity: true)
        roomFree.broadcast()
        monitor.unlock()

        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        let outcome = Result { () throws(WALError) in
            if writing.shipped.isEmpty {
                try writer.write(&writing, durableAtWrite: durableAtWrite, makeDurable: makeDurableBeforeRoll)
            } else {
                try writer.writeShipped(&writing, makeDurable: makeDurableBeforeRoll)
            }
        }

        if case .success = outcome, let observer = writeObserver.withLock({ $0 }) { observer.call() }
        monitor.lock()
        writeTokenHeld = false
        let active = writer.active
        syncTarget = (active.fd, active.path)
        var release = CommitLedger<Waiter>.Release()
        if case .failure(let error) = outcome {
            if ledger.failure == nil { telemetry.failed(error) }
            release = ledger.fail(error)
            release.failed.append(contentsOf: writing.waiters)
            release.failed.append(contentsOf: takePendingWaitersLocked())
        } else if let failure = ledger.failure {
            // A sync failed while this group was written: it will never be confirmed.
            release = CommitLedger<Waiter>.Release(failed: writing.waiters, error: failure)
        } else {
            #if WAL_BROKEN_REPLICA_ACKS_ON_WRITE
            // BROKEN ON PURPOSE (harness check builds only): a follower acknowledges frames once written,
            // before the fdatasync that makes them durable.
            if !writing.shipped.isEmpty {
                release.confirmed = [.init(endLSN: writing.endLSN, waiters: writing.waiters)]
                writing.waiters = []
            }
            #endif
            ledger.written(through: writing.endLSN, waiters: writing.waiters)
            writing.waiters = waiterArrays.popLast() ?? []
            // A follower's run of frames without records (a leader's seal) adds nothing to sync: release it
            // now if no sync will.
            if !ledger.hasUnsyncedWrites && ledger.syncsInFlight == 0 { release = ledger.releaseConfirmed() }
        }
        writing.reset(firstLSN: nextLSN)
        drained.broadcast()  // for `waitUntilIdle`, when this group needs no sync (a follower's seal alone)
        // No wake-up here: an I/O thread loops on to what is pending itself, and an inline caller hands on.
        if !release.isEmpty { completeUnlocked(release) }
    }

    /// Before a roll: every record before `lsn` is made durable in the old segment (the syncs in flight
    /// drained, then one more sync if needed). Called by the write-token holder without the lock.
    private func makeDurableBeforeRoll(_ lsn: LSN) throws(WALError) {
        monitor.lock()
        defer { monitor.unlock() }
        #if !WAL_BROKEN_SYNCS_STALE_SEGMENT_AT_ROLL  // (harness check builds only: the group's first segment)
        // The segment being left, which is not the one the group began in when the group rolled before: the
        // sync must reach the file these records are in (that one was closed at the earlier roll, and its
        // descriptor number may already name another file).
        syncTarget = (writer.active.fd, writer.active.path)
        #endif
        if ledger.failure == nil { ledger.written(through: lsn, waiters: []) }
        while true {
            if let failure = ledger.failure { throw failure }
            if ledger.syncsInFlight > 0 { drained.wait(); continue }
            if ledger.hasUnsyncedWrites { syncOnce(); continue }
            return
        }
    }

    // MARK: - Syncs

    /// Issues one `fdatasync` of the active segment covering everything written, runs it without the lock,
    /// then releases what it proved durable. Called and returns with the lock held.
    private func syncOnce() {
        let ticket = ledger.issueSync()
        let (fd, path) = syncTarget
        monitor.unlock()
        #if WAL_BROKEN_CONFIRM_BEFORE_SYNC
        // BROKEN ON PURPOSE, only in builds made to check that the tests catch it: confirms first, syncs after.
        let outcome: Result<Void, WALError> = .success(())
        defer { monitor.unlock(); try? sync(fd, path: path); monitor.lock() }
        #else
        let outcome = Result { () throws(WALError) in try sync(fd, path: path) }
        #endif
        monitor.lock()
        let durableBefore = ledger.durable
        if case .failure(let error) = outcome, ledger.failure == nil { telemetry.failed(error) }
        var release = ledger.syncReturned(ticket, outcome)
        let madeDurable = ledger.durable.rawValue - durableBefore.rawValue
        if let failure = ledger.failure {
            let doomed = takePendingWaitersLocked()
            if !doomed.isEmpty {
                release.failed.append(contentsOf: doomed)
                release.error = release.error ?? failure
            }
        }
        if ledger.syncsInFlight == 0 { drained.broadcast() }
        if !release.isEmpty { completeUnlocked(release, madeDurable: madeDurable) }
    }

    /// `fdatasync`, timed and counted (skipped only in the benchmark's unsafe no-sync mode).
    private func sync(_ fd: Int32, path: String) throws(WALError) {
        if options.durability == .unsafeNoSync { return }
        #if WAL_BROKEN_NO_FDATASYNC
        return  // BROKEN ON PURPOSE (harness check builds only): never syncs.
        #endif
        let start = Platform.monotonicNanoseconds()
        #if WAL_BROKEN_RETRY_FAILED_SYNC
        // BROKEN ON PURPOSE (harness check builds only): retries a failed fdatasync and believes the retry.
        do { try fileSystem.dataSync(fd, path: path) } catch { try fileSystem.dataSync(fd, path: path) }
        #else
        try fileSystem.dataSync(fd, path: path)
        #endif
        let nanoseconds = Platform.monotonicNanoseconds() - start
        counters.recordSync(nanoseconds: nanoseconds)
        telemetry.synced(nanoseconds: nanoseconds, path: path)
    }

    /// Records a clean shutdown (a seal frame). Called with the lock held, after every sync returned.
    private func writeSeal() {
        do {
            try writer.writeSeal(nextLSN: nextLSN, durable: ledger.committed) { (fd, path) throws(WALError) in
                try sync(fd, path: path)
            }
        } catch {
            _ = ledger.fail(error)  // the seal only speeds up the next open; recovery scans without it
        }
    }

    /// After a failure: the pending batch will never be written; wakes everyone who waits for anything.
    /// Lock held.
    private func takePendingWaitersLocked() -> [Waiter] {
        let doomed = pending.waiters
        pending.reset(firstLSN: nextLSN)
        let parked = roomWaiters
        roomWaiters.removeAll()
        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        roomFree.broadcast()
        drained.broadcast()
        work.broadcast()
        return doomed
    }

    /// Completes what `release` says, without the lock, in LSN order; keeps the emptied waiter arrays.
    /// Called and returns with the lock held.
    /// `madeDurable`: records the sync behind this release made durable, for the metrics (reported here, off
    /// the lock, like the completions).
    private func completeUnlocked(_ release: CommitLedger<Waiter>.Release, madeDurable: UInt64 = 0) {
        monitor.unlock()
        if madeDurable > 0 { telemetry.madeDurable(records: madeDurable) }
        var batch = SinkBatch()
        for group in release.confirmed {
            for w in group.waiters { batch.complete(w, .success(w.firstLSN)) }
        }
        batch.flush(failure: nil)
        if let error = release.error {
            for w in release.failed { batch.complete(w, .failure(error)) }
            batch.flush(failure: error)
            if !release.uncertain.isEmpty {
                let unknown = WALError(.indeterminate, "this leader's log stopped (\(error.message)) after the record "
                                       + "was written, and possibly shipped, but before its in-sync replicas confirmed "
                                       + "it: a new leader may still commit it", path: error.path, errno: error.errno)
                for w in release.uncertain { batch.complete(w, .failure(unknown)) }
                batch.flush(failure: unknown)
            }
        }
        monitor.lock()
        for var group in release.confirmed where waiterArrays.count < 8 {
            group.waiters.removeAll(keepingCapacity: true)
            waiterArrays.append(group.waiters)
        }
    }
}

/// Gathers the consecutive waiters of a release that name the same `CompletionSink` into one call; completes
/// the others one by one, in LSN order all the same.
private struct SinkBatch {
    private var sink: (any CompletionSink)?
    private var submissions: [(firstLSN: LSN, token: AnyObject)] = []

    mutating func complete(_ waiter: Waiter, _ result: Result<LSN, WALError>) {
        guard case .sink(let next, let token) = waiter.completion else {
            flush(failure: result.failure)
            waiter.completion.complete(result)
            return
        }
        if let sink, sink !== next { flush(failure: result.failure) }
        sink = next
        submissions.append((waiter.firstLSN, token))
    }

    mutating func flush(failure: WALError?) {
        guard let sink, !submissions.isEmpty else { return }
        sink.complete(submissions, failure: failure)
        self.sink = nil
        submissions.removeAll(keepingCapacity: true)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
