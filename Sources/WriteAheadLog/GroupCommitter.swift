import Foundation
import LogFormat

/// The write path. Producers add records to a pending batch under a short lock. A few I/O threads
/// (`syncsInFlightMax` of them) take turns at the write token: the holder takes the whole pending batch,
/// encodes and compresses it into frames, writes them with one `pwrite` into the active segment, hands the
/// token on, and then runs one `fdatasync` covering everything written so far. While one thread waits for
/// its sync, the next one already encodes and writes the next group: compression overlaps the sync, and
/// up to `syncsInFlightMax` syncs are in flight at once. A thread that finishes a sync and finds records
/// pending goes straight on with them, so under load no thread is woken per group.
///
/// Confirms are released strictly in LSN order: a sync's result is used only once every sync issued
/// before it has returned too (a write-back error is reported to one caller only, so a success that
/// overtook an earlier, failing sync proves nothing).
///
/// Invariant: no waiter is completed successfully before an `fdatasync` that covers its records returned
/// and all earlier syncs returned without error. After any failed write or sync, nothing is confirmed again.
final class GroupCommitter: @unchecked Sendable {
    struct ActiveSegment {
        var segmentID: SegmentID
        var firstLSN: LSN
        var path: String
        var fd: Int32
        var writeOffset: Int
    }

    private struct Group {
        var endLSN: LSN
        var waiters: [Waiter]
    }

    private struct SyncSlot {
        var sequence: UInt64
        var endLSN: LSN
        var done: Bool
    }

    enum Admission { case accepted, full, failed(WALError) }

    private let directory: String
    private let options: LogOptions
    private let fileSystem: any FileSystem
    private let counters: LogCounters
    private let catalog: SegmentCatalog
    private let identity: LogIdentity
    private let preparer: SegmentPreparer

    private let monitor = Monitor()
    /// I/O threads wait here for work (pending records, or the end).
    private let work: Monitor.Condition
    /// The write-token holder waits here for the syncs in flight to drain (segment roll).
    private let drained: Monitor.Condition
    private let roomFree: Monitor.Condition
    private let threadExited: Monitor.Condition

    // Guarded by monitor.
    private var pending: PendingBatch
    private var nextLSN: LSN
    private var durable: LSN
    private var failure: WALError?
    private var stopping = false
    private var idleThreads = 0
    /// Held by the I/O thread that is encoding and writing a group; guards `writing`, `encodeBuffer`,
    /// `locations` and the active segment's write offset.
    private var writeTokenHeld = false
    private var inFlightGroups: [Group] = []
    private var syncSlots: [SyncSlot] = []
    /// The end of the records written to the active segment (the next sync covers up to here).
    private var writtenEnd: LSN
    private var nextSyncSequence: UInt64 = 0
    private var syncsInFlight = 0
    private var roomWaiters: [UnsafeContinuation<UInt64, any Error>] = []
    private var waiterArrays: [[Waiter]] = []
    private var liveThreads = 0
    private var sealed = false
    /// The file syncs go to: the active segment's, changed only at a roll with no sync in flight.
    private var syncTarget: (fd: Int32, path: String)

    // Owned by the writer thread.
    private var writing: PendingBatch
    private var active: ActiveSegment
    private let encodeBuffer: UnsafeMutableRawBufferPointer
    private var locations: [SegmentCatalog.FrameLocation] = []
    private var nextSegmentRequested = false

    init(directory: String, options: LogOptions, fileSystem: any FileSystem, counters: LogCounters,
         catalog: SegmentCatalog, identity: LogIdentity, preparer: SegmentPreparer,
         active: ActiveSegment, nextLSN: LSN) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.counters = counters
        self.catalog = catalog
        self.identity = identity
        self.preparer = preparer
        self.active = active
        self.nextLSN = nextLSN
        self.durable = nextLSN.previous
        self.writtenEnd = nextLSN
        self.syncTarget = (active.fd, active.path)
        let capacity = options.pendingBytesMax + options.frameBytesMax
        pending = PendingBatch(capacity: capacity, firstLSN: nextLSN)
        writing = PendingBatch(capacity: capacity, firstLSN: nextLSN)
        encodeBuffer = .allocate(byteCount: 2 * capacity + (1 << 20), alignment: 4096)
        work = monitor.makeCondition()
        drained = monitor.makeCondition()
        roomFree = monitor.makeCondition()
        threadExited = monitor.makeCondition()
        locations.reserveCapacity(1024)

        liveThreads = options.syncsInFlightMax
        for i in 0..<options.syncsInFlightMax {
            let thread = Thread { [self] in ioLoop() }
            thread.name = "wal-io-\(i)"
            thread.start()
        }
    }

    deinit { encodeBuffer.deallocate() }

    /// The highest LSN whose record is durable and confirmed (0 when none is).
    var durableLSN: LSN { monitor.withLock { durable } }

    // MARK: - Producers

    /// Adds records to the pending batch, or says why not. `records` yields each record's bytes.
    func submit(count: Int, totalBytes: Int, completion: Completion, callbackOnCaller: Bool = false,
                _ records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void) -> Admission {
        monitor.lock()
        if let failure { monitor.unlock(); return .failed(failure) }
        if stopping { monitor.unlock(); return .failed(WALError(.closed, "the log is closed")) }
        if !hasRoom(bytes: totalBytes, records: count) {
            monitor.unlock()
            return .full
        }
        let first = nextLSN
        let frameBytesMax = options.frameBytesMax
        records { pending.add($0, frameBytesMax: frameBytesMax) }
        precondition(pending.endLSN == first + UInt64(count), "record count mismatch")
        nextLSN = first + UInt64(count)
        pending.waiters.append(Waiter(firstLSN: first, completion: completion))
        // Wake an idle I/O thread only if it could start at once; a busy one picks the batch up itself.
        counters.appends.add(1, ordering: .relaxed)
        // When the log is idle and nobody else is waiting, the caller writes and syncs the group itself,
        // saving the two thread wake-ups of a hand-off: a blocking caller (`appendAndWait`) blocks its own
        // thread anyway; an async caller (`append`) blocks its cooperative thread for about one `fdatasync`
        // (unless `commitOnCallerWhenIdle` is off). Under load the I/O threads do it (a caller among many
        // could be descheduled mid-group). A callback runs here only when its submitter asked for it: a
        // callback that submits again would otherwise nest commits.
        let inline: Bool = switch completion {
        case .blocking: true
        case .async: options.commitOnCallerWhenIdle
        case .callback: callbackOnCaller && options.commitOnCallerWhenIdle
        }
        if inline, pending.waiters.count == 1, !writeTokenHeld, syncsInFlight == 0, !stopping {
            commitOneGroup()
            monitor.unlock()
            return .accepted
        }
        let wake = idleThreads > 0 && !writeTokenHeld
        monitor.unlock()
        if wake { work.signal() }
        return .accepted
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
        if hasRoom(bytes: totalBytes, records: records) || failure != nil || stopping {
            monitor.unlock()
            continuation.resume(returning: PendingBatch.retryToken)
            return
        }
        roomWaiters.append(continuation)
        monitor.unlock()
    }

    /// Blocks the calling thread until the pending batch has room for `totalBytes` in `records` records.
    func waitForRoomBlocking(totalBytes: Int, records: Int) {
        monitor.withLock {
            while !hasRoom(bytes: totalBytes, records: records) && failure == nil && !stopping {
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
        let failed = failure
        monitor.unlock()
        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        preparer.stop()
        fileSystem.close(active.fd)
        if let failed { throw failed }
    }

    // MARK: - I/O threads

    private func ioLoop() {
        monitor.lock()
        while true {
            if failure == nil && !pending.isEmpty && !writeTokenHeld {
                commitOneGroup()
                continue
            }
            if stopping && (failure != nil || (pending.isEmpty && syncsInFlight == 0 && !writeTokenHeld)) {
                if failure == nil && !sealed { sealed = true; writeSeal() }
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

    /// Takes the write token and the pending batch, writes the batch, hands the token on, then syncs.
    /// Called and returns with the lock held.
    private func commitOneGroup() {
        writeTokenHeld = true
        swap(&pending, &writing)
        pending.reset(firstLSN: nextLSN)
        if let spare = waiterArrays.popLast() { pending.waiters = spare }
        let durableAtWrite = durable
        let parked = roomWaiters
        roomWaiters.removeAll(keepingCapacity: true)
        roomFree.broadcast()
        monitor.unlock()

        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        let outcome = Result { () throws(WALError) in try writeGroup(durableAtWrite: durableAtWrite) }

        monitor.lock()
        writeTokenHeld = false
        if !pending.isEmpty && idleThreads > 0 { work.signal() }
        if case .failure(let error) = outcome {
            let doomed = failLocked(error)
            let own = writing.waiters
            writing.reset(firstLSN: nextLSN)
            monitor.unlock()
            complete(doomed, with: .failure(error))
            for w in own { w.completion.complete(.failure(error)) }
            monitor.lock()
            return
        }
        if failure != nil {
            // A sync failed while this group was written: it will never be confirmed.
            let own = writing.waiters
            let error = failure!
            writing.reset(firstLSN: nextLSN)
            monitor.unlock()
            for w in own { w.completion.complete(.failure(error)) }
            monitor.lock()
            return
        }
        let endLSN = writing.endLSN
        inFlightGroups.append(Group(endLSN: endLSN, waiters: writing.waiters))
        writing.waiters = waiterArrays.popLast() ?? []
        writing.reset(firstLSN: nextLSN)
        writtenEnd = endLSN
        runSync(sequence: startSyncLocked())
    }

    /// Encodes `writing` into frames and writes them with one `pwrite` (two when the segment rolls over).
    private func writeGroup(durableAtWrite: LSN) throws(WALError) {
        writing.closeFrames()
        var cursor = 0
        var bufferOffset = active.writeOffset
        var payloadStart = 0
        var lsn = writing.firstLSN
        locations.removeAll(keepingCapacity: true)
        var bytesIn = 0
        for cut in writing.cuts {
            let payloadBytes = cut.payloadEnd - payloadStart
            if bufferOffset + cursor + FrameEncoder.frameBytesMax(payloadBytes: payloadBytes) > options.segmentBytes {
                try flush(bytes: cursor, at: bufferOffset)
                try roll(firstLSN: lsn)
                bufferOffset = active.writeOffset
                cursor = 0
            }
            let header = writing.payload.withUnsafeBytes { payload in
                FrameEncoder.encode(
                    payload: UnsafeRawBufferPointer(rebasing: payload[payloadStart..<cut.payloadEnd]),
                    recordCount: cut.recordCount, segmentID: active.segmentID, firstLSN: lsn,
                    durableLSN: durableAtWrite, leaderEpoch: options.leaderEpoch,
                    compression: options.compression,
                    into: UnsafeMutableRawBufferPointer(rebasing: encodeBuffer[cursor...]))
            }
            locations.append(.init(firstLSN: lsn.rawValue, offset: UInt32(bufferOffset + cursor),
                                   frameBytes: UInt32(header.frameBytes), recordCount: UInt32(cut.recordCount)))
            cursor += header.frameBytes
            lsn = lsn + UInt64(cut.recordCount)
            bytesIn += payloadBytes
            payloadStart = cut.payloadEnd
        }
        precondition(lsn == writing.endLSN, "frames must cover the group exactly")
        try flush(bytes: cursor, at: bufferOffset)
        counters.groups.add(1, ordering: .relaxed)
        counters.records.add(UInt64(writing.recordCount), ordering: .relaxed)
        counters.bytesUncompressed.add(UInt64(bytesIn), ordering: .relaxed)
    }

    /// Writes the first `bytes` of the encode buffer at `offset` of the active segment and indexes them.
    private func flush(bytes: Int, at offset: Int) throws(WALError) {
        guard bytes > 0 else { return }
        try fileSystem.write(active.fd, UnsafeRawBufferPointer(rebasing: encodeBuffer[0..<bytes]), at: offset,
                             path: active.path)
        active.writeOffset = offset + bytes
        locations.withUnsafeBufferPointer { catalog.addFrames($0) }
        counters.frames.add(UInt64(locations.count), ordering: .relaxed)
        counters.bytesWritten.add(UInt64(bytes), ordering: .relaxed)
        locations.removeAll(keepingCapacity: true)
        // Zero-filling a segment writes as many bytes as the segment holds; start it once the active one is
        // half full, so that it is ready in time without competing with a log that is barely used.
        if !nextSegmentRequested && active.writeOffset > options.segmentBytes / 2 {
            nextSegmentRequested = true
            preparer.prepare(active.segmentID.next)
        }
    }

    /// Moves writing to the next segment: waits for the syncs in flight, syncs the old segment, then writes
    /// the new one's header, syncs it, renames it into place and syncs the directory, all before any frame
    /// goes into it. Old and new segments are never in flight together, which keeps recovery simple.
    private func roll(firstLSN: LSN) throws(WALError) {
        monitor.lock()
        while syncsInFlight > 0 && failure == nil { drained.wait() }
        if let failure { monitor.unlock(); throw failure }
        // This group's frames before the roll are written but not counted in writtenEnd yet.
        writtenEnd = firstLSN
        runSync(sequence: startSyncLocked())
        if let failure { monitor.unlock(); throw failure }
        monitor.unlock()

        let prepared = try preparer.take(active.segmentID.next)
        let next = try Self.activate(prepared, firstLSN: firstLSN, identity: identity, directory: directory,
                                     options: options, fileSystem: fileSystem)
        fileSystem.close(active.fd)
        active = next
        monitor.withLock { syncTarget = (next.fd, next.path) }
        nextSegmentRequested = false
        catalog.add(.init(segmentID: next.segmentID, firstLSN: firstLSN, path: next.path, frames: []))
    }

    /// Records a clean shutdown: a frame with no records whose watermark says everything before it is durable.
    /// Called with the lock held, after every sync returned.
    private func writeSeal() {
        let frameBytes = FrameEncoder.frameBytesMax(payloadBytes: 0)
        guard active.writeOffset + frameBytes <= options.segmentBytes else { return }
        let header = FrameEncoder.encode(
            payload: UnsafeRawBufferPointer(start: nil, count: 0), recordCount: 0, kind: .seal,
            segmentID: active.segmentID, firstLSN: nextLSN, durableLSN: durable,
            leaderEpoch: options.leaderEpoch, compression: .none, into: encodeBuffer)
        do {
            try fileSystem.write(active.fd, UnsafeRawBufferPointer(rebasing: encodeBuffer[0..<header.frameBytes]),
                                 at: active.writeOffset, path: active.path)
            try sync(active.fd, path: active.path)
            active.writeOffset += header.frameBytes
        } catch {
            failure = failure ?? error  // the seal only speeds up the next open; recovery scans without it
        }
    }

    // MARK: - Syncs

    /// Registers a sync that covers every record written so far. Lock held.
    private func startSyncLocked() -> UInt64 {
        let sequence = nextSyncSequence
        nextSyncSequence += 1
        syncSlots.append(SyncSlot(sequence: sequence, endLSN: writtenEnd, done: false))
        syncsInFlight += 1
        return sequence
    }

    /// Runs one `fdatasync` of the active segment without the lock, then releases what it proved durable.
    /// Called and returns with the lock held.
    private func runSync(sequence: UInt64) {
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
        syncsInFlight -= 1
        if syncsInFlight == 0 { drained.broadcast() }
        var finished: [Group] = []
        var doomed: [Waiter] = []
        var error: WALError?
        switch outcome {
        case .failure(let e):
            error = e
            if failure == nil { doomed = failLocked(e) }
        case .success:
            guard failure == nil else { break }
            let i = syncSlots.firstIndex { $0.sequence == sequence }!
            syncSlots[i].done = true
            var newDurable = durable
            while let first = syncSlots.first, first.done {
                newDurable = max(newDurable, first.endLSN.previous)
                syncSlots.removeFirst()
            }
            durable = newDurable
            var n = 0
            while n < inFlightGroups.count && inFlightGroups[n].endLSN.previous <= newDurable { n += 1 }
            if n > 0 {
                finished.append(contentsOf: inFlightGroups[0..<n])
                inFlightGroups.removeFirst(n)
            }
        }
        if finished.isEmpty && doomed.isEmpty { return }
        monitor.unlock()
        for group in finished {
            for w in group.waiters { w.completion.complete(.success(w.firstLSN)) }
        }
        if let error { complete(doomed, with: .failure(error)) }
        monitor.lock()
        for var group in finished {
            group.waiters.removeAll(keepingCapacity: true)
            if waiterArrays.count < 8 { waiterArrays.append(group.waiters) }
        }
    }

    /// `fdatasync`, timed and counted (skipped only in the benchmark's unsafe no-sync mode).
    private func sync(_ fd: Int32, path: String) throws(WALError) {
        if options.durability == .unsafeNoSync { return }
        #if WAL_BROKEN_NO_FDATASYNC
        return  // BROKEN ON PURPOSE (harness check builds only): never syncs.
        #endif
        let start = monotonicNanoseconds()
        #if WAL_BROKEN_RETRY_FAILED_SYNC
        // BROKEN ON PURPOSE (harness check builds only): retries a failed fdatasync and believes the retry.
        do { try fileSystem.dataSync(fd, path: path) } catch { try fileSystem.dataSync(fd, path: path) }
        #else
        try fileSystem.dataSync(fd, path: path)
        #endif
        counters.recordSync(nanoseconds: monotonicNanoseconds() - start)
    }

    /// Makes the log refuse everything from now on and returns every waiter that will never be confirmed.
    /// Lock held.
    private func failLocked(_ error: WALError) -> [Waiter] {
        if failure == nil {
            failure = WALError(.logFailed, "the log failed and confirms nothing more; close and reopen it to "
                               + "run recovery (cause: \(error))", path: error.path, errno: error.errno)
        }
        var doomed: [Waiter] = []
        for g in inFlightGroups { doomed.append(contentsOf: g.waiters) }
        inFlightGroups.removeAll()
        doomed.append(contentsOf: pending.waiters)
        pending.reset(firstLSN: nextLSN)
        syncSlots.removeAll()
        let parked = roomWaiters
        roomWaiters.removeAll()
        for c in parked { c.resume(returning: PendingBatch.retryToken) }
        roomFree.broadcast()
        drained.broadcast()
        work.broadcast()
        return doomed
    }

    private func complete(_ waiters: [Waiter], with result: Result<LSN, WALError>) {
        for w in waiters { w.completion.complete(result) }
    }
}
