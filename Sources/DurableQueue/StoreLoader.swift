import LogFormat
import DurableLog

/// The one way a store's state is rebuilt from disk, shared by `QueueStore.open` and the read-only
/// `StoreInspector` (so `walctl` can never disagree with what the store itself would do): the checkpoint,
/// then the log's records after it, then what salvage took out of the log.
enum StoreLoader {
    /// Walks the log's records from an LSN; lost ranges go to `onLost` and are skipped.
    typealias RecordSource = (_ from: LSN, _ onLost: @escaping (ClosedRange<UInt64>) -> Void,
                              _ body: (LSN, UnsafeRawBufferPointer) throws -> Bool) throws -> Void

    struct Replay {
        var records = 0
        var bytes = 0
        /// Lost ranges after the checkpoint: records whose effect on the state is unknown.
        var uncertain: [ClosedRange<UInt64>] = []
    }

    /// The checkpoint's state, or an empty state without one.
    static func loadCheckpoint(directory: String, fileSystem: any FileSystem) throws(QueueError) -> StoreState {
        let loaded: Result<StoreState, ByteReader.Malformed>?
        do { loaded = try Checkpoint.load(directory: directory, fileSystem: fileSystem) } catch {
            throw QueueError.fileOperation(error, doing: "reading the checkpoint")
        }
        guard let loaded else { return StoreState() }
        do throws(ByteReader.Malformed) {
            return try loaded.get()
        } catch {
            throw QueueError(.corruption, "the checkpoint \(directory)/\(Checkpoint.fileName) is damaged (\(error)). "
                             + "If `walctl info \(directory)/wal` shows the log starting at LSN 1, delete the "
                             + "checkpoint to rebuild from the log; otherwise restore from a backup")
        }
    }

    /// Checks that the log continues the checkpoint: it must hold every record after it.
    static func checkContinuity(checkpoint covered: UInt64, logFirst: LSN, logEnd: LSN) throws(QueueError) {
        guard covered <= logEnd.rawValue else {
            throw QueueError(.corruption, "the checkpoint covers LSN \(covered) but the log ends at \(logEnd): "
                             + "confirmed records are missing from the log (or salvage had to cut it before the "
                             + "checkpoint's end: see the log's quarantine directory); restore from a backup")
        }
        guard logEnd.rawValue == covered || LSN(covered + 1) >= logFirst else {
            throw QueueError(.corruption, "the log starts at LSN \(logFirst) but the checkpoint covers only "
                             + "through \(covered): records in between are missing; restore from a backup")
        }
    }

    /// Applies the log's records after the checkpoint to `state`.
    static func replay(into state: inout StoreState, through logEnd: LSN,
                       from source: RecordSource) throws(QueueError) -> Replay {
        var replay = Replay()
        guard logEnd.rawValue > state.appliedLSN else { return replay }
        var uncertain: [ClosedRange<UInt64>] = []
        do {
            try source(LSN(state.appliedLSN + 1), { uncertain.append($0) }) { lsn, bytes in
                guard lsn.rawValue > state.appliedLSN else { return true }
                #if QUEUE_BROKEN_REPLAY_DROPS_LAST_RECORD  // BROKEN ON PURPOSE (harness check builds only)
                guard lsn < logEnd else { return false }
                #endif
                if let payload = try StoreRecord.payload(in: bytes) {
                    _ = state.apply(payload, at: lsn.rawValue)
                } else {
                    _ = state.apply(try StoreRecord.decode(bytes), at: lsn.rawValue)
                }
                replay.records += 1
                replay.bytes += bytes.count
                return true
            }
        } catch let error as ByteReader.Malformed {
            throw QueueError(.corruption, "a log record that passed its checksum does not decode (\(error)); "
                             + "it was written by another program or version")
        } catch let error as WALError {
            throw QueueError.from(error)
        } catch {
            preconditionFailure("\(error)")
        }
        replay.uncertain = uncertain
        return replay
    }

    /// Takes out of the state what lies in records salvage took out of the log, and says what that was.
    /// Deterministic: every open of the same log drops the same things (until a checkpoint records it).
    static func dropLost(_ lost: [ClosedRange<UInt64>], uncertain: [ClosedRange<UInt64>],
                         from state: inout StoreState) -> SalvageReport? {
        guard !lost.isEmpty else { return nil }
        var report = state.dropBodies(in: lost)
        report.lostLSNs = lost.map(LSN.range)
        report.uncertainLSNs = uncertain.map(LSN.range)
        return report
    }
}

/// What records that salvage took out of the log (`.lost` frames) cost the store.
public struct SalvageReport: Sendable, Equatable {
    /// LSN ranges the log no longer holds the bytes of.
    public var lostLSNs: [ClosedRange<LSN>] = []
    /// Lost ranges after the checkpoint the store opened from: what those records did (publishes, acks,
    /// offset commits, declarations, ...) is unknown, and the state is what the surviving records make of
    /// it. Ranges the checkpoint covers cost only the message bodies listed below.
    public var uncertainLSNs: [ClosedRange<LSN>] = []
    /// Queued messages whose bodies were lost: taken out of their queues (never delivered).
    public var droppedMessages: [(queue: String, id: MessageID)] = []
    /// Half messages whose bodies were lost: taken out (never committed).
    public var droppedHalfMessages: [HalfMessageID] = []
    /// Stream records whose bytes were lost: their offsets stay (offsets are never reused) and reads skip them.
    public var lostStreamRecords: [(stream: String, offset: StreamOffset)] = []

    public static func == (a: SalvageReport, b: SalvageReport) -> Bool {
        a.lostLSNs == b.lostLSNs && a.uncertainLSNs == b.uncertainLSNs
            && a.droppedMessages.elementsEqual(b.droppedMessages) { $0 == $1 }
            && a.droppedHalfMessages == b.droppedHalfMessages
            && a.lostStreamRecords.elementsEqual(b.lostStreamRecords) { $0 == $1 }
    }
}

extension StoreState {
    /// Removes every queued and half message whose body lies in `lost`; lists them and the stream records
    /// there (which stay, unreadable).
    mutating func dropBodies(in lost: [ClosedRange<UInt64>]) -> SalvageReport {
        func isLost(_ lsn: UInt64) -> Bool { lost.contains { $0.contains(lsn) } }
        var report = SalvageReport()
        for (qid, var q) in queues.sorted(by: { $0.key < $1.key }) {
            var dropped: [UInt64] = []
            let keep = { (e: MessageEntry) -> Bool in
                guard isLost(e.bodyLSN) else { return true }
                dropped.append(e.id)
                return false
            }
            q.replaceReady(with: .init(q.ready.filter(keep)))
            q.returned = .init(q.returned.filter(keep))
            for (id, u) in q.unacked where !keep(u.entry) { q.unacked[id] = nil }
            for id in dropped.sorted() { report.droppedMessages.append((q.name, MessageID(rawValue: id))) }
            queues[qid] = q
        }
        for (id, half) in halfMessages where isLost(half.entry.bodyLSN) {
            halfMessages[id] = nil
            report.droppedHalfMessages.append(HalfMessageID(rawValue: id))
        }
        report.droppedHalfMessages.sort()
        for (_, s) in streams.sorted(by: { $0.key < $1.key }) {
            for (i, e) in s.entries.enumerated() where isLost(e.lsn) {
                report.lostStreamRecords.append((s.name, StreamOffset(rawValue: s.firstOffset + UInt64(i))))
            }
        }
        // Live bytes are recomputed from what is left rather than adjusted entry by entry.
        for qid in queues.keys {
            queues[qid]?.recomputeLiveBytes()
        }
        return report
    }
}
