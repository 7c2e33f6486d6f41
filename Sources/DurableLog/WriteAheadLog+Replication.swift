import LogFormat
import Logging

/// The two ends of shipping frames byte for byte: a leader reads the frames it wrote, a follower writes
/// them at the same place of the same segment and syncs them with its own group commit. The stream between
/// them is the replication layer's; these calls know nothing of it.
extension WriteAheadLog {
    /// The log's logger (`LogOptions.logger`, with the log's directory in its metadata), for the replication
    /// layer's messages about this log.
    package var logger: Logger { telemetry.logger }

    // MARK: - Leader: frames to ship

    /// Where a follower whose log ends before `next` continues in this log: the end of the frame here that
    /// ends at `next` (the first frame position of its segment when a segment starts there).
    ///
    /// - Throws: `.lsnOutOfRange` when this log ends before `next` (the follower holds records this log does
    ///   not, and must be cut back first) or `next` lies before this log's first segment; `.invalidArgument`
    ///   when no frame of this log ends at `next`.
    package func shipPosition(for next: LSN) throws(WALError) -> ShipPosition {
        let segments = catalog.snapshot
        guard let end = try Self.frameEnd(at: next, in: segments, catalog: catalog) else {
            throw WALError(.lsnOutOfRange, "this log ends before LSN \(next): the follower holds records it does not")
        }
        return ShipPosition(segmentID: segments[end.segmentIndex].segmentID, offset: end.offset)
    }

    /// The frames written from `position` on, as this log wrote them: a run within one segment of at most
    /// `maxBytes` (at least one frame), ending with a frame that holds records (a seal between two such frames
    /// is part of the run), the next segment's first frames once this one holds no more. Every frame is
    /// verified before it is handed out. Nil when nothing is written past `position` yet. The position after
    /// the run is `run.end`. Blocks on the segment read.
    ///
    /// - Throws: `.lsnOutOfRange` when `position`'s segment is no longer in the log (truncated away);
    ///   `.corruption` when the bytes on disk are not the frames the log wrote.
    package func framesToShip(from position: ShipPosition, maxBytes: Int) throws(WALError) -> ShippedFrames? {
        try framesAndEndToShip(from: position, maxBytes: maxBytes)?.frames
    }

    /// `framesToShip`, with the LSN after the run's last record.
    package func framesAndEndToShip(from position: ShipPosition,
                                    maxBytes: Int) throws(WALError) -> (frames: ShippedFrames, endLSN: LSN)? {
        let segments = catalog.snapshot
        guard var index = segments.firstIndex(where: { $0.segmentID == position.segmentID }) else {
            throw WALError(.lsnOutOfRange, "segment \(position.segmentID) is no longer in this log")
        }
        var start = position.offset
        while true {
            let segment = segments[index]
            let frames = try catalog.frames(of: segment)
            // Frames lie in offset order: a binary search (a segment can hold a hundred thousand frames).
            let before = SegmentCatalog.lastIndex(in: frames) { Int($0.offset) < start }
            let candidate = before.map { $0 + 1 } ?? 0
            guard candidate < frames.count, case let first = candidate else {
                // Nothing more here: the next segment's first frame, if the log has rolled.
                guard index + 1 < segments.count else { return nil }
                index += 1
                start = SegmentHeader.blockBytes
                continue
            }
            var last = first
            while last + 1 < frames.count,
                  Int(frames[last + 1].offset) + Int(frames[last + 1].frameBytes) - start <= maxBytes {
                last += 1
            }
            let end = Int(frames[last].offset) + Int(frames[last].frameBytes)
            let run = ShippedFrames(segmentID: segment.segmentID, offset: start,
                                    bytes: try reader.readBytes(path: segment.path, at: start, count: end - start))
            let verified: ShippedFrames.Verified
            do {
                verified = try run.verify(segmentBytes: options.segmentBytes)
            } catch {
                throw WALError(.corruption, "frames this log wrote do not verify before shipping: \(error.message)",
                               path: segment.path, offset: start,
                               lsnRange: frames[first].firstLSN...(frames[last].firstLSN + UInt64(frames[last].recordCount) - 1))
            }
            return (run, verified.endLSN)
        }
    }

    /// Calls `observer` after each group this log writes from now on (nil stops it), on the log thread that
    /// wrote it, with the frames already readable by `framesToShip`: a leader's cue to ship. Keep it short.
    package func observeWrites(_ observer: (@Sendable () -> Void)?) { committer.observeWrites(observer) }

    // MARK: - Follower: frames shipped to it

    /// Blocks until every run accepted so far is durable (or the log failed or is closing). A follower calls it
    /// before it tells a leader where its log ends: runs an earlier connection delivered may still be on their
    /// way to the disk, and an end that counted them would be acknowledged as durable too early.
    package func waitUntilAcceptedIsDurable() { committer.waitUntilIdle() }

    /// A threadless log (`LogOptions.threadless`): does on this thread what an I/O thread would do next: with
    /// `write`, writes what is pending (not yet durable); with `sync`, then runs one sync and completes what it
    /// made durable. Returns whether it did anything.
    package func performIO(write: Bool = true, sync: Bool = true) -> Bool { committer.performIO(write: write, sync: sync) }

    /// The LSN after the last record this log accepted (appended, or taken from a leader), durable or not.
    package var acceptedEnd: LSN { committer.acceptedEnd }

    /// A follower's log (`LogOptions.isReplica`): writes a run of its leader's frames byte for byte at the
    /// same offset of the same segment, group-committed with the runs that arrive meanwhile, and calls
    /// `completion` with the run's first LSN once an `fdatasync` covered it (then `durableLSN` covers the
    /// whole run). Returns false, without calling `completion`, when the pending buffer is full: retry once
    /// earlier runs completed (`waitForRoom`).
    ///
    /// The run must continue exactly what this log holds (see `acceptShipped(_:leaderEpoch:)`); nothing of a
    /// refused run is written.
    ///
    /// - Throws: `.invalidArgument` for a damaged run or one that does not continue this log; `.staleEpoch`
    ///   for frames older than the log's last one or newer than `leaderEpoch`; `.logFailed`, `.closed`.
    package func acceptShipped(_ frames: ShippedFrames, leaderEpoch: UInt64,
                               completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) throws(WALError) -> Bool {
        try acceptShipped(frames, verified: try frames.verify(segmentBytes: options.segmentBytes),
                          leaderEpoch: leaderEpoch, completion: completion)
    }

    /// The same for a run the caller verified already (`verified` is what `frames.verify` returned).
    package func acceptShipped(_ frames: ShippedFrames, verified: ShippedFrames.Verified, leaderEpoch: UInt64,
                               completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) throws(WALError) -> Bool {
        switch committer.submitShipped(frames, verified, leaderEpoch: leaderEpoch, completion: .callback(completion)) {
        case .accepted: return true
        case .full: return false
        case .failed(let error): throw error
        }
    }

    /// `acceptShipped(_:verified:leaderEpoch:completion:)`, blocking the calling thread while the pending buffer is
    /// full instead of returning false: for a follower's connection, which runs on a thread of its own and whose
    /// leader bounds what is in flight.
    package func acceptShippedWaiting(_ frames: ShippedFrames, verified: ShippedFrames.Verified, leaderEpoch: UInt64,
                                      completion: @escaping @Sendable (Result<LSN, WALError>) -> Void) throws(WALError) {
        while try !acceptShipped(frames, verified: verified, leaderEpoch: leaderEpoch, completion: completion) {
            committer.waitForRoomBlocking(totalBytes: frames.bytes.count, records: verified.recordCount)
        }
    }

    /// The same, suspending until the run is durable here (and while the pending buffer is full); returns the
    /// LSN after its last record. The run is checked before anything is written: every frame intact (CRC32C),
    /// of its segment, one after the other; it starts where this log's frames end (or at the first frame of
    /// the next segment) and at this log's next LSN; its epochs are at least the last frame's here and at
    /// most `leaderEpoch`, the epoch of the leader this follower accepted.
    package func acceptShipped(_ frames: ShippedFrames, leaderEpoch: UInt64) async throws(WALError) -> LSN {
        let verified = try frames.verify(segmentBytes: options.segmentBytes)
        while true {
            let token: UInt64
            do {
                token = try await withUnsafeThrowingContinuation { c in
                    switch committer.submitShipped(frames, verified, leaderEpoch: leaderEpoch, completion: .async(c)) {
                    case .accepted: break
                    case .full: committer.waitForRoom(c, totalBytes: frames.bytes.count, records: verified.recordCount)
                    case .failed(let error): c.resume(throwing: error)
                    }
                }
            } catch let error as WALError {
                throw error
            } catch {
                preconditionFailure("the committer resumes with WALError only, got \(error)")
            }
            if token != PendingBatch.retryToken { return verified.endLSN }
        }
    }

    /// The header of the last frame holding records (nil when there is none): a follower's shipped frames
    /// never go below its epoch, and its watermark is a committed LSN the follower knows of.
    static func lastRecordsFrame(_ catalog: SegmentCatalog, fileSystem: any FileSystem) throws(WALError) -> FrameHeader? {
        for segment in catalog.snapshot.reversed() {
            guard let last = try catalog.frames(of: segment).last else { continue }
            let fd = try fileSystem.open(segment.path, writable: false, create: false)
            defer { fileSystem.close(fd) }
            return try FrameReading.readHeader(fd, path: segment.path, location: last, fileSystem: fileSystem)
        }
        return nil
    }
}
