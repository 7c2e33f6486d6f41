import LogFormat
import DurableLog

/// Read-only inspection of a store directory (for tools such as `walctl queues`): loads the checkpoint and
/// replays the log after it without opening the store, taking its lock or writing a byte. Safe beside a
/// running store; what it shows is the state as of the log's durable end.
public enum StoreInspector {
    /// The store's state as `summarize(directory:fileSystem:)` rebuilt it.
    public struct Summary: Sendable {
        /// The LSN the checkpoint covers; 0 without one.
        public var checkpointLSN: LSN
        /// Log records after the checkpoint that were replayed.
        public var replayedRecords: Int
        /// The LSN of the last record the state reflects (the checkpoint's when no record after it was
        /// replayed; 0 for an empty store).
        public var lastLSN: LSN
        /// Queues as the log says: `unacked` counts deliveries of a running (or crashed) process, which go back
        /// to their queues when the store is next opened.
        public var queues: [QueueInfo]
        /// Every stream, by name.
        public var streams: [StreamInfo]
        /// Body bytes of every message in a queue (ready or unacked), half message and retained stream record:
        /// what the log must keep.
        public var liveBytes: Int
        /// Every registered idempotent producer, by name.
        public var producers: [ProducerInfo]
        /// Half messages prepared and not yet committed or rolled back.
        public var halfMessages: [HalfMessageInfo]
        /// Operations of a transaction whose commit record is not in the log (a crash cut it off): the next
        /// open drops them.
        public var uncommittedOperations: Int
        /// When the log holds records salvage took out: what they cost (as the store's open would report).
        public var salvage: SalvageReport?
    }

    /// An idempotent producer's deduplication state.
    public struct ProducerInfo: Sendable, Equatable {
        /// The name it registered under.
        public var name: String
        /// Its durable id (`IdempotentProducer.id`).
        public var id: ProducerID
        /// Its latest registration's epoch: 0 at the first, one more at each after it.
        public var epoch: UInt32
        /// Milliseconds since 1970 of its last registration or publish.
        public var lastActive: Int64
        /// The last sequence stored, per queue or stream name.
        public var lastSequences: [String: ProducerSequence]
    }

    /// The LSN the store's checkpoint covers, or nil when it has none.
    public static func checkpointLSN(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(QueueError) -> LSN? {
        let state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
        return state.appliedLSN == 0 ? nil : LSN(state.appliedLSN)
    }

    /// The store's state as `QueueStore.open` would rebuild it (the same code: `StoreLoader`), read-only.
    /// - Throws: `QueueError` `.corruption` for a damaged checkpoint, log or record (the store would not open
    ///   either), `.ioFailure`.
    public static func summarize(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(QueueError) -> Summary {
        var state = try StoreLoader.loadCheckpoint(directory: directory, fileSystem: fileSystem)
        let covered = state.appliedLSN
        let wal = "\(directory)/wal"
        let log: LogInspection
        do { log = try LogInspector.inspect(directory: wal, fileSystem: fileSystem) } catch {
            throw QueueError.fileOperation(error, doing: "inspecting the log")
        }
        if case .corruption(let cut) = log.verdict {
            throw QueueError(.corruption, "the log is damaged at byte \(cut.offset) of \(cut.path) (\(cut.reason)); "
                             + "the store will not open. " + (log.salvagePlan?.summary ?? ""),
                             log: WALError(.corruption, cut.reason, path: cut.path, offset: cut.offset))
        }
        let end = LSN(log.nextLSN.rawValue - 1)
        try StoreLoader.checkContinuity(checkpoint: covered, logFirst: log.firstLSN, logEnd: end)
        let replay = try StoreLoader.replay(into: &state, through: end) { from, onLost, body in
            try LogInspector.forEachRecord(directory: wal, from: from, through: end, fileSystem: fileSystem,
                                           onLost: onLost) { lsn, bytes, _, _, _ in try body(lsn, bytes) }
        }
        let salvage = StoreLoader.dropLost(log.lostLSNs, uncertain: replay.uncertain, from: &state)
        let replayed = replay.records
        let queues = state.queues.values.map {
            QueueInfo(name: $0.name, durable: true, ready: $0.readyCount, unacked: $0.unacked.count, consumers: 0,
                      deadLettered: $0.deadLettered, liveBytes: $0.liveBytes)
        }.sorted { $0.name < $1.name }
        let streams = state.streams.values.map { $0.info }.sorted { $0.name < $1.name }
        let producers = state.producers.values.map { p in
            ProducerInfo(name: p.name, id: ProducerID(rawValue: p.id), epoch: p.epoch, lastActive: p.lastActive,
                         lastSequences: Dictionary(uniqueKeysWithValues: p.targets.map { target, last in
                             (state.queues[target]?.name ?? state.streams[target]?.name ?? "#\(target)",
                              ProducerSequence(rawValue: last.sequence))
                         }))
        }.sorted { $0.name < $1.name }
        let halves = state.halfMessages.sorted { $0.key < $1.key }.map { id, h in
            HalfMessageInfo(id: HalfMessageID(rawValue: id), queue: state.queues[h.queue]?.name ?? "", checks: Int(h.checks),
                            preparedAt: h.preparedAt)
        }
        return Summary(checkpointLSN: LSN(covered), replayedRecords: replayed, lastLSN: LSN(state.appliedLSN), queues: queues,
                       streams: streams, liveBytes: state.liveBytes, producers: producers, halfMessages: halves,
                       uncommittedOperations: state.openTransactions.values.reduce(0) { $0 + $1.count },
                       salvage: salvage)
    }
}
