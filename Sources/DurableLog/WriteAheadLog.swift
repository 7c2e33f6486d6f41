import Foundation
import LogFormat
import Synchronization

/// A durable, append-only log of records in segment files of CRC32C-framed, LZ4-compressed batches.
///
/// ```swift
/// let log = try WriteAheadLog.open(directory: "/var/lib/app/wal")
/// let lsn = try await log.append(Array("hello".utf8))   // returns once fdatasync covered it
/// let bytes = try log.read(lsn)
/// try log.close()
/// ```
///
/// Every append completes only after an `fdatasync` that covers it returned: an LSN you were given is on
/// disk. Appends from many tasks or threads are group-committed: one `pwrite` and one `fdatasync` for
/// all that arrived while the previous group was being written. After a failed write or sync the log
/// fails every unconfirmed append and refuses new ones until it is closed and reopened.
///
/// `open` and `close` do blocking file I/O (recovery, the final sync); call them off Swift's cooperative
/// thread pool when that matters. Appends never block the pool: the async form suspends.
public final class WriteAheadLog: Sendable {
    /// The log's directory, as given to `open`.
    public let directory: String
    /// The options the log was opened with (validated by `open`).
    public let options: LogOptions
    /// The directory's identity, created with the log and written into every segment header.
    public let identity: LogIdentity
    /// What `open` found and cut.
    public let recoveryReport: RecoveryReport
    /// A follower's log: the watermark of its last frame of records at open, the committed LSN its leader had
    /// when it wrote that frame (every in-sync replica held the records through it). `.none` otherwise.
    package let lastFrameWatermark: LSN
    private let counterStore = LogCounters()
    let committer: GroupCommitter
    let catalog: SegmentCatalog
    let reader: LogReader
    private let preparer: SegmentPreparer
    let fileSystem: any FileSystem
    private let lockFD: Int32
    private let closed = Atomic<Bool>(false)
    let telemetry: LogTelemetry

    /// Opens (creating if needed) the log in `directory`, running recovery: a torn tail is cut; damage to
    /// confirmed data throws `WALError.corruption` naming the file, offset and LSNs (unless
    /// `options.recoveryMode` is `.salvage`). Holds an exclusive `flock` on `LOCK` while open.
    ///
    /// - Throws: `.locked` if another process has the log open, `.corruption`, `.ioFailure`, `.invalidLog`.
    ///
    /// - Parameters:
    ///   - directory: the log's directory (created with its parent synced when missing).
    ///   - options: layout, batching, recovery mode, logging and metrics.
    ///   - fileSystem: the file-I/O seam (`PosixFileSystem` unless a test injects faults).
    ///   - verifyingFrom: closed segments whose records all lie before this LSN are not read at open (their
    ///     segment headers only): for a layer whose checkpoint covers them, so that opening a large log reads
    ///     little of it. The first read of such a segment indexes it from its frame headers; reads verify every
    ///     frame, and a segment whose headers are damaged is refused then (`.corruption`).
    public static func open(directory: String, options: LogOptions = LogOptions(),
                            fileSystem: any FileSystem = PosixFileSystem(),
                            verifyingFrom: LSN = .first) throws(WALError) -> WriteAheadLog {
        try options.validate()
        let telemetry = LogTelemetry(options: options, directory: directory)
        try fileSystem.createDirectoryDurably(directory)
        let lockPath = "\(directory)/LOCK"
        let lockFD = try fileSystem.open(lockPath, writable: true, create: true)
        do throws(WALError) {
            do throws(WALError) {
                try fileSystem.lockExclusivelySoon(lockFD, path: lockPath)
            } catch where error.code == .locked && OpenLogs.contains(directory) {
                throw WALError(.locked, "this process already has the log open (another WriteAheadLog or "
                               + "QueueStore on the same directory); close that one first", path: lockPath)
            }
            var recovery = Recovery(directory: directory, options: options, fileSystem: fileSystem)
            recovery.verifyFrom = verifyingFrom
            recovery.indexLazily = true
            let started = Platform.monotonicNanoseconds()
            var outcome: Recovery.Outcome
            do { outcome = try recovery.run() } catch {
                if error.code == .corruption {
                    telemetry.logger.error("refused to open: damaged confirmed records", metadata: ["error": "\(error)"])
                }
                throw error
            }
            if let wanted = options.identity {
                if outcome.segments.isEmpty {
                    outcome.identity = wanted
                } else if outcome.identity != wanted {
                    throw WALError(.invalidLog, "the log in this directory is \(outcome.identity), not \(wanted): a "
                                   + "replica of one group never takes another log's records", path: directory)
                }
            }
            telemetry.recovered(outcome.report, nanoseconds: Platform.monotonicNanoseconds() - started)
            let log = try WriteAheadLog(directory: directory, options: options, fileSystem: fileSystem,
                                        lockFD: lockFD, recovered: outcome, telemetry: telemetry)
            OpenLogs.insert(directory)
            return log
        } catch {
            fileSystem.close(lockFD)
            throw error
        }
    }

    private init(directory: String, options: LogOptions, fileSystem: any FileSystem, lockFD: Int32,
                 recovered: Recovery.Outcome, telemetry: LogTelemetry) throws(WALError) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.lockFD = lockFD
        self.telemetry = telemetry
        self.identity = recovered.identity
        self.recoveryReport = recovered.report
        preparer = SegmentPreparer(directory: directory, segmentBytes: options.segmentBytes, fileSystem: fileSystem,
                                   threadless: options.threadless)
        let active: SegmentWriter.ActiveSegment
        var segments = recovered.segments
        do {
            if options.isReplica, segments.count > 1, let last = segments.last, last.frames.isEmpty {
                // A follower's empty last segment is dropped: where one segment ends and the next begins is its
                // leader's to say (the leader may hold more frames in the segment before), and the follower
                // rolls again when its leader's frames start the next segment.
                try fileSystem.remove(last.path)
                try fileSystem.syncDirectory(directory)
                segments.removeLast()
            }
            if let last = segments.last, var offset = recovered.writeOffset {
                if options.isReplica {
                    // A follower continues where its last frame of records ends: a seal after it (its own, from
                    // when it led, or its leader's) is where its leader's next frames go, since the leader ships
                    // from the end of the frame that ends at the follower's last record.
                    offset = last.frames.last.map { Int($0.offset) + Int($0.frameBytes) } ?? SegmentHeader.blockBytes
                }
                let fd = try fileSystem.open(last.path, writable: true, create: false)
                active = .init(segmentID: last.segmentID, firstLSN: last.firstLSN, path: last.path, fd: fd,
                               writeOffset: offset)
            } else {
                try preparer.discardSpares()
                let prepared = try preparer.take(SegmentID(1))
                active = try SegmentWriter.activate(prepared, firstLSN: recovered.nextLSN, identity: identity,
                                                     directory: directory, options: options, fileSystem: fileSystem)
                segments = [.init(segmentID: active.segmentID, firstLSN: active.firstLSN, path: active.path, frames: [])]
            }
        } catch {
            preparer.stop()
            throw error
        }
        catalog = SegmentCatalog(segments) { segment throws(WALError) in
            switch try Recovery.indexFromHeaders(segment.path, segmentID: segment.segmentID, firstLSN: segment.firstLSN,
                                                 endLSN: segment.endLSN, fileSystem: fileSystem) {
            case .indexed(let indexed): return indexed.frames
            case .broken(let offset):
                #if WAL_BROKEN_LAZY_INDEX_SWALLOWS_DAMAGE  // BROKEN ON PURPOSE (harness check builds only)
                if offset >= 0 { return [] }
                #endif
                throw WALError(.corruption, "the frame headers of segment \(segment.segmentID) do not lead from LSN "
                               + "\(segment.firstLSN) to \(segment.endLSN) (the open, trusting the checkpoint above, "
                               + "did not read them): its records cannot be served", path: segment.path, offset: offset)
            }
        }
        reader = LogReader(fileSystem: fileSystem, catalog: catalog)
        let writer = SegmentWriter(directory: directory, options: options, fileSystem: fileSystem,
                                   counters: counterStore, catalog: catalog, identity: identity,
                                   preparer: preparer, active: active)
        var last: FrameHeader?
        if options.isReplica {
            do { last = try Self.lastRecordsFrame(catalog, fileSystem: fileSystem) } catch {
                writer.close()
                throw error
            }
        }
        lastFrameWatermark = last?.durableLSN ?? .none
        committer = GroupCommitter(options: options, fileSystem: fileSystem, counters: counterStore,
                                   telemetry: telemetry, writer: writer, nextLSN: recovered.nextLSN,
                                   lastEpoch: last?.leaderEpoch ?? 0)
    }

    // MARK: - Watermarks and counters

    /// The highest LSN that is durable here (`fdatasync`'d). 0 when the log holds no record.
    public var durableLSN: LSN { committer.durableLSN }
    /// The highest LSN that is safe to confirm. On a single node it equals `durableLSN`; a replication
    /// leader's log also waits for its in-sync replicas. Appends complete when this passes their LSN.
    public var committedLSN: LSN { committer.committedLSN }

    /// A replication leader's log (`LogOptions.confirmsWaitForReplicas`): every in-sync replica has made the
    /// records through `lsn` durable (the lowest of their reports; a lower report than an earlier one changes
    /// nothing). Completes the appends that are now durable here and there.
    package func replicasDurable(through lsn: LSN) { committer.replicasDurable(through: lsn) }
    /// The first LSN still in the log (records before it were truncated away).
    public var firstLSN: LSN { catalog.firstLSN }
    /// The write path's counters since this log was opened (each open starts from zero).
    public var counters: LogCounters.Snapshot { counterStore.snapshot() }

    // MARK: - Appending

    /// Appends one record and returns its LSN once an `fdatasync` covering it returned.
    /// Waits (suspending, never blocking a thread) while the pending buffer is full.
    ///
    /// - Throws: `WALError` `.recordTooLarge`, `.ioFailure` (this append's write or sync failed),
    ///   `.logFailed` (an earlier one did), `.closed`.
    public func append<Bytes: ContiguousBytes>(_ record: Bytes) async throws(WALError) -> LSN {
        let size = record.withUnsafeBytes { $0.count }
        try checkRecordSize(size)
        return try await submitAsync(count: 1, totalBytes: size + BatchPayload.lengthPrefixBytes) { add in
            record.withUnsafeBytes { add($0) }
        }
    }

    /// Appends several records as one unit of submission: they get consecutive LSNs and complete together.
    /// Returns the first LSN.
    /// - Throws: `.invalidArgument` for an empty array, `.recordTooLarge`, and what `append(_:)` throws.
    public func append<Bytes: ContiguousBytes>(contentsOf records: [Bytes]) async throws(WALError) -> LSN {
        guard !records.isEmpty else { throw WALError(.invalidArgument, "append(contentsOf:) needs at least one record") }
        var total = 0
        for r in records {
            let size = r.withUnsafeBytes { $0.count }
            try checkRecordSize(size)
            total += size + BatchPayload.lengthPrefixBytes
        }
        guard total <= options.pendingBytesMax, records.count <= options.pendingRecordsMax else {
            throw WALError(.recordTooLarge, "the records together exceed pendingBytesMax or pendingRecordsMax; "
                           + "append them in parts")
        }
        return try await submitAsync(count: records.count, totalBytes: total) { add in
            for r in records { r.withUnsafeBytes { add($0) } }
        }
    }

    private func submitAsync(count: Int, totalBytes: Int,
                             _ records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void) async throws(WALError) -> LSN {
        while true {
            let token: UInt64
            do {
                token = try await withUnsafeThrowingContinuation { c in
                    switch committer.submit(count: count, totalBytes: totalBytes, completion: .async(c), records) {
                    case .accepted: break
                    case .full: committer.waitForRoom(c, totalBytes: totalBytes, records: count)
                    case .failed(let error): c.resume(throwing: error)
                    }
                }
            } catch let error as WALError {
                throw error
            } catch {
                preconditionFailure("the committer resumes appends with WALError only, got \(error)")
            }
            if token != PendingBatch.retryToken { return LSN(token) }
        }
    }

    /// Appends one record and calls `completion` (on a log thread; keep it short) once it is durable or
    /// has failed. Never waits: when the pending buffer is full it throws `.pendingFull` at once and
    /// `completion` is not called; retry when earlier appends have completed.
    public func append(_ record: UnsafeRawBufferPointer,
                       completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) throws(WALError) {
        try checkRecordSize(record.count)
        switch committer.submit(count: 1, totalBytes: record.count + BatchPayload.lengthPrefixBytes,
                                completion: .callback(completion), { add in add(record) }) {
        case .accepted: return
        case .full: throw WALError(.pendingFull, "the pending buffer is full; retry after earlier appends complete")
        case .failed(let error): throw error
        }
    }

    /// Appends `count` records (written by `records`, `totalBytes` in all including the 4-byte length of each)
    /// as one submission (the interface the queue layer is built on; `package` access) and calls `completion` with the first LSN once they are durable, or with the error.
    /// Suspends only while the pending buffer is full. For layers built on the log that act on each confirm
    /// in LSN order: completions can arrive on several log threads at once, so order them by LSN yourself.
    ///
    /// The log measures the records it is given: a record over `recordBytesMax`, or a submission over
    /// `pendingBytesMax`/`pendingRecordsMax`, throws `.recordTooLarge`; a `count` or `totalBytes` that does not
    /// match the records added throws `.invalidArgument`. Either way nothing is appended.
    package func append(count: Int, totalBytes: Int,
                       records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void,
                       completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) async throws(WALError) {
        while try !tryAppend(count: count, totalBytes: totalBytes, records: records, completion: completion) {
            await waitForRoom(totalBytes: totalBytes, count: count)
        }
    }

    /// The same without waiting: returns false (and never calls `completion`) when the pending buffer is full.
    /// With `callbackOnCaller`, an append to an idle log may be written, synced and completed on the calling
    /// thread before this returns (see `LogOptions.commitOnCallerWhenIdle`): only for callers whose
    /// `completion` may run on their own thread, inside this call.
    package func tryAppend(count: Int, totalBytes: Int, callbackOnCaller: Bool = false,
                          records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void,
                          completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) throws(WALError) -> Bool {
        try tryAppend(count: count, totalBytes: totalBytes, callbackOnCaller: callbackOnCaller, records: records,
                      completion: .callback(completion))
    }

    /// `tryAppend`, with the confirm going to `sink` together with the others of its release (`token` says
    /// which submission it is): one call per sync instead of one per submission.
    package func tryAppend(count: Int, totalBytes: Int, callbackOnCaller: Bool = false,
                          records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void,
                          sink: any CompletionSink, token: AnyObject) throws(WALError) -> Bool {
        try tryAppend(count: count, totalBytes: totalBytes, callbackOnCaller: callbackOnCaller, records: records,
                      completion: .sink(sink, token: token))
    }

    /// `tryAppend` for records the caller lays out in place: `recordSizes` gives each record's size, and
    /// `write` fills each one's bytes (its index, a buffer of exactly that size) straight in the pending batch,
    /// under the log's lock: keep it to encoding. The log sums the sizes itself. The confirm goes to `sink`
    /// as in `tryAppend(count:totalBytes:callbackOnCaller:records:sink:token:)`.
    ///
    /// - Throws: `.invalidArgument` for no records or a negative size; `.recordTooLarge` for a record over
    ///   `recordBytesMax` or a submission over `pendingBytesMax`/`pendingRecordsMax`; nothing is appended.
    package func tryAppend(recordSizes: [Int], callbackOnCaller: Bool = false,
                           write: (_ index: Int, _ into: UnsafeMutableRawBufferPointer) -> Void,
                           sink: any CompletionSink, token: AnyObject) throws(WALError) -> Bool {
        guard !recordSizes.isEmpty, recordSizes.allSatisfy({ $0 >= 0 }) else {
            throw WALError(.invalidArgument, "a submission holds at least one record, of zero bytes or more")
        }
        if let oversized = recordSizes.first(where: { $0 > options.recordBytesMax }) {
            throw WALError(.recordTooLarge, "record of \(oversized) bytes exceeds recordBytesMax (\(options.recordBytesMax))")
        }
        let totalBytes = recordSizes.reduce(0) { $0 + $1 + BatchPayload.lengthPrefixBytes }
        guard totalBytes <= options.pendingBytesMax, recordSizes.count <= options.pendingRecordsMax else {
            throw WALError(.recordTooLarge, "a submission of \(recordSizes.count) records and \(totalBytes) bytes exceeds "
                           + "pendingBytesMax (\(options.pendingBytesMax)) or pendingRecordsMax "
                           + "(\(options.pendingRecordsMax)); append it in parts")
        }
        switch committer.submitInPlace(recordSizes: recordSizes, completion: .sink(sink, token: token),
                                       callbackOnCaller: callbackOnCaller, write: write) {
        case .accepted: return true
        case .full: return false
        case .failed(let error): throw error
        }
    }

    private func tryAppend(count: Int, totalBytes: Int, callbackOnCaller: Bool,
                           records: (_ add: (UnsafeRawBufferPointer) -> Void) -> Void,
                           completion: Completion) throws(WALError) -> Bool {
        guard count >= 1 else { throw WALError(.invalidArgument, "a submission holds at least one record") }
        guard totalBytes <= options.pendingBytesMax, count <= options.pendingRecordsMax else {
            throw WALError(.recordTooLarge, "a submission of \(count) records and \(totalBytes) bytes exceeds "
                           + "pendingBytesMax (\(options.pendingBytesMax)) or pendingRecordsMax "
                           + "(\(options.pendingRecordsMax)); append it in parts")
        }
        switch committer.submit(count: count, totalBytes: totalBytes, completion: completion,
                                callbackOnCaller: callbackOnCaller, records) {
        case .accepted: return true
        case .full: return false
        case .failed(let error): throw error
        }
    }

    /// Suspends until the pending buffer could take `count` records of `totalBytes` (or the log failed or
    /// closed): what to await after `tryAppend` returned false.
    package func waitForRoom(totalBytes: Int, count: Int) async {
        _ = try? await withUnsafeThrowingContinuation { (c: UnsafeContinuation<UInt64, any Error>) in
            committer.waitForRoom(c, totalBytes: totalBytes, records: count)
        }
    }

    /// Appends one record and blocks the calling thread until it is durable. For threads you own; from
    /// async code use `append(_:) async`.
    public func appendAndWait(_ record: UnsafeRawBufferPointer) throws(WALError) -> LSN {
        try checkRecordSize(record.count)
        let total = record.count + BatchPayload.lengthPrefixBytes
        while true {
            let waiter = BlockingWaiter()
            switch committer.submit(count: 1, totalBytes: total, completion: .blocking(waiter), { add in add(record) }) {
            case .accepted: return try waiter.wait().get()
            case .full: committer.waitForRoomBlocking(totalBytes: total, records: 1)
            case .failed(let error): throw error
            }
        }
    }

    private func checkRecordSize(_ size: Int) throws(WALError) {
        guard size <= options.recordBytesMax else {
            throw WALError(.recordTooLarge, "record of \(size) bytes exceeds recordBytesMax (\(options.recordBytesMax))")
        }
    }

    // MARK: - Reading

    /// The record at `lsn`, verified against its frame's checksum.
    /// - Throws: `.lsnOutOfRange` if it is not (or no longer, or not yet durably) in the log; `.corruption`.
    public func read(_ lsn: LSN) throws(WALError) -> [UInt8] {
        var result: [UInt8]?
        do {
            try forEachRecord(from: lsn, through: lsn) { _, bytes in
                result = Array(bytes)
                return false
            }
        } catch let error as WALError {
            throw error
        } catch {
            preconditionFailure("reading threw \(error)")
        }
        guard let result else { throw outOfRange(lsn) }
        return result
    }

    /// The LSNs of the records stored in the same frame as `lsn` (a frame is read and decompressed whole, so
    /// a reader that wants records near `lsn` gets the rest of the frame for free); nil when no frame holds it.
    public func recordsInFrame(containing lsn: LSN) -> Range<LSN>? {
        catalog.frameRecords(containing: lsn).map { LSN($0.lowerBound)..<LSN($0.upperBound) }
    }

    /// Calls `body` with each durable record from `start` (through `end`, when given) in LSN order, until it
    /// returns false. Each frame is verified before any of its records is passed on; the bytes are valid
    /// only during the call.
    ///
    /// Records that salvage took out of the log (`RecoveryReport.lostLSNs`) throw `.recordsLost`, unless
    /// `onLost` is given: then each lost range goes to it and the walk goes on after it.
    public func forEachRecord(from start: LSN, through end: LSN? = nil,
                              onLost: ((ClosedRange<UInt64>) -> Void)? = nil,
                              _ body: (LSN, UnsafeRawBufferPointer) throws -> Bool) throws {
        let last = min(end ?? .init(UInt64.max), durableLSN)
        guard start >= firstLSN, start.rawValue >= 1 else { throw outOfRange(start) }
        if start > last {
            if end != nil { throw outOfRange(start) }
            return
        }
        try reader.forEachRecord(from: start, through: last, onLost: onLost, body)
    }

    private func outOfRange(_ lsn: LSN) -> WALError {
        WALError(.lsnOutOfRange, "LSN \(lsn) is not in the log (it holds \(firstLSN) through \(durableLSN) durably)")
    }

    /// The segment files, oldest first: each one's first LSN, the LSN after its last record, and its path.
    /// Segments are preallocated, so each takes `options.segmentBytes` on disk.
    public var segments: [SegmentSummary] {
        catalog.snapshot.map { SegmentSummary(firstLSN: $0.firstLSN, endLSN: $0.endLSN, path: $0.path) }
    }

    /// Segment files held ready beside the log (not in `segments`): spares kept from truncation for reuse (at most
    /// two) and the next segment, prepared in advance. Each takes `options.segmentBytes` on disk.
    public var preparedSegments: Int { preparer.filesHeld }

    /// One segment file of the log, as `segments` lists it.
    public struct SegmentSummary: Sendable, Equatable {
        /// The LSN of the segment's first record (the number in its file name).
        public var firstLSN: LSN
        /// The LSN after its last record written, `firstLSN` while it holds none. For the active segment it
        /// includes records written but not yet durable.
        public var endLSN: LSN
        /// The file's path: `directory`, then the first LSN in 20 digits and `.wal`.
        public var path: String
    }

    // MARK: - Truncation and closing

    /// Deletes whole segments whose records all lie before `lsn`, oldest first, syncing the directory after
    /// each, and keeps the active segment. Crash-safe: a crash leaves a suffix of the log.
    public func truncate(before lsn: LSN) throws(WALError) {
        let durableEnd = durableLSN.next
        let removed = catalog.removeSegments(below: min(lsn, durableEnd))
        guard !removed.isEmpty else { return }
        reader.forget(removed)
        // One directory sync per deletion (or rename to a spare, which takes the file out of the log just the
        // same), oldest first: a power cut must leave a suffix of the log. Unsynced deletions may persist in
        // any order, and a gap in the middle would read as corruption.
        for path in removed {
            if try !preparer.adoptSpare(path) { try fileSystem.remove(path) }
            try fileSystem.syncDirectory(directory)
        }
    }

    /// Whether `close` was called.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// A log dropped without `close` would leak its two I/O threads and its descriptors: say so loudly, and
    /// close it here. That blocks the dropping thread for a final sync (the log is being deallocated, so the
    /// close cannot move to another thread): a fallback for a bug in the embedder, never the normal path.
    deinit {
        guard !closed.load(ordering: .acquiring) else { return }
        telemetry.logger.error("a WriteAheadLog was dropped without close(); closing it now (call close() or shutdown())")
        try? close()
    }

    /// Closes the log without blocking the calling thread: the final sync and seal run on a thread of their
    /// own, so a task on Swift's cooperative pool can await it. Otherwise as `close()`.
    public func shutdown() async throws(WALError) {
        try await onOwnThread { () throws(WALError) in try self.close() }
    }

    /// Writes out pending appends, waits until they are durable, records a clean shutdown and releases the
    /// log. Throws the failure that stopped the log, if one did (its unconfirmed appends already failed).
    /// Blocks the calling thread for the final sync; from async code use `shutdown()`.
    public func close() throws(WALError) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        defer {
            reader.forget(nil)
            OpenLogs.remove(directory)
            fileSystem.close(lockFD)
        }
        try committer.close()
    }
}

/// The directories of the logs this process has open, so that a second open of one in the same process is
/// told so (the lock alone cannot tell this process from another). Keyed by the resolved path.
enum OpenLogs {
    private static let directories = Mutex<[String: Int]>([:])

    static func insert(_ directory: String) { directories.withLock { $0[key(directory), default: 0] += 1 } }

    static func remove(_ directory: String) {
        directories.withLock { d in
            let k = key(directory)
            if let n = d[k] { d[k] = n > 1 ? n - 1 : nil }
        }
    }

    static func contains(_ directory: String) -> Bool { directories.withLock { $0[key(directory)] != nil } }

    private static func key(_ directory: String) -> String { Platform.resolvedPath(directory) ?? directory }
}
