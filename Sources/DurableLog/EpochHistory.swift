import LogFormat

/// Where each leader epoch starts in one replica's log: what a replica that rejoins a group uses to find where
/// its log and the leader's part (Kafka's leader-epoch checkpoint, RocketMQ's epoch file). Two replicas hold
/// the same record at an LSN when they hold it under the same epoch: an epoch has one leader, which writes each
/// LSN once. So the history alone tells where a replica's tail stops matching the leader's, without comparing
/// records.
///
/// Rules: epochs increase along the history and so do their first LSNs; an epoch that starts where the
/// previous one did replaces it (the previous one has no record in this log).
public struct EpochHistory: Equatable, Sendable {
    /// An epoch and the LSN of its first record in this log.
    public struct Entry: Equatable, Sendable {
        /// The leader epoch.
        public var epoch: UInt64
        /// The first LSN written under it.
        public var firstLSN: LSN

        /// An entry: `epoch` starts at `firstLSN`.
        public init(epoch: UInt64, firstLSN: LSN) {
            self.epoch = epoch
            self.firstLSN = firstLSN
        }
    }

    /// The entries, oldest first.
    public private(set) var entries: [Entry] = []

    /// An empty history (a log that holds no replicated record yet).
    public init() {}

    /// The epoch of this log's last records; nil when the history is empty.
    public var lastEpoch: UInt64? { entries.last?.epoch }

    /// Notes that `epoch` starts at `firstLSN`: before a leader writes the epoch's first record, or before a
    /// follower acks the first record of an epoch new to it.
    /// - Throws: `.invalidArgument` when `epoch` is not above the last epoch or `firstLSN` is below the last
    ///   epoch's start (the history would no longer be ordered).
    public mutating func begin(epoch: UInt64, at firstLSN: LSN) throws(WALError) {
        if let last = entries.last {
            guard epoch > last.epoch else {
                throw WALError(.invalidArgument, "epoch \(epoch) does not follow epoch \(last.epoch)")
            }
            guard firstLSN >= last.firstLSN else {
                throw WALError(.invalidArgument, "epoch \(epoch) would start at LSN \(firstLSN), before epoch "
                               + "\(last.epoch)'s start at \(last.firstLSN)")
            }
            if firstLSN == last.firstLSN { entries.removeLast() }
        }
        entries.append(Entry(epoch: epoch, firstLSN: firstLSN))
    }

    /// The largest epoch at or below `epoch` in this history, and the LSN where it ends in a log whose next
    /// LSN is `logEnd` (the first LSN of the next epoch, or `logEnd`). Nil when every epoch here is above
    /// `epoch`. What a leader answers a replica that asks about its last epoch.
    public func end(ofEpochAtMost epoch: UInt64, logEnd: LSN) -> (epoch: UInt64, end: LSN)? {
        guard let i = entries.lastIndex(where: { $0.epoch <= epoch }) else { return nil }
        let end = i + 1 < entries.count ? entries[i + 1].firstLSN : logEnd
        return (entries[i].epoch, min(end, logEnd))
    }

    /// Forgets the epochs that start at or after `lsn`: the log was truncated to end before `lsn`.
    public mutating func truncate(from lsn: LSN) {
        entries.removeAll { $0.firstLSN >= lsn }
    }

    /// Where a replica's log stops matching the leader's: the LSN it must truncate to (keep everything
    /// before), found by the exchange a rejoining replica runs with its leader. The replica sends its last
    /// epoch; the leader answers with the largest epoch it has at or below it and where that epoch ends in
    /// its log; the replica cuts at the lower of that and where the same epoch ends in its own log, and asks
    /// again until nothing more is cut. (Comparing only the replica's last epoch with the leader's answer, as
    /// Kafka's first version did, keeps a tail of an epoch the leader never saw: KIP-279.)
    public static func truncationPoint(leader: EpochHistory, leaderEnd: LSN,
                                       replica: EpochHistory, replicaEnd: LSN) -> LSN {
        var history = replica
        var end = replicaEnd
        while let cut = history.rejoinStep(end: end, answer: history.lastEpoch.flatMap {
            leader.end(ofEpochAtMost: $0, logEnd: leaderEnd)
        }) {
            end = cut
            history.truncate(from: cut)
        }
        return end
    }

    /// One round of that exchange, on the replica's side: given the leader's answer for this history's last
    /// epoch (the largest epoch the leader has at or below it and where it ends in the leader's log; nil when
    /// it has none), where this log, ending before `end`, must be cut; nil when it agrees with the leader up
    /// to `end` and can follow from there. After a cut, the replica truncates its history there and asks
    /// again (a cut at `end` cuts only the history: epochs begun there without a record). Every cut is where
    /// one of its epochs begins or where the leader's epoch ends, so at a frame's end (a frame holds one epoch).
    public func rejoinStep(end: LSN, answer: (epoch: UInt64, end: LSN)?) -> LSN? {
        guard let last = lastEpoch else { return nil }  // no epochs: an empty log agrees with any leader
        guard let answer, let own = self.end(ofEpochAtMost: answer.epoch, logEnd: end) else {
            // The leader's log holds nothing from this replica's epochs: nothing of its records matches.
            let cut = min(end, entries.first?.firstLSN ?? end)
            return cut == end ? nil : cut
        }
        #if REPLICATION_BROKEN_REJOIN_TRUSTS_FOREIGN_EPOCH_END  // BROKEN ON PURPOSE (harness check builds only)
        let foreign = false
        #else
        let foreign = own.epoch != answer.epoch
        #endif
        guard !foreign else {
            // The leader went from its epoch `answer.epoch` (which this replica never had) straight past every
            // later epoch of this replica: those are cut first, then the replica asks about the epoch below
            // (KIP-279). The leader's end of an epoch this replica lacks says nothing about its own records.
            // (At `end` when those epochs hold no record yet: then only the history is cut.)
            return own.end
        }
        let cut = min(answer.end, own.end, end)
        if cut == end && last == answer.epoch { return nil }
        return cut
    }
}

// MARK: - The file

/// The history in its file, `epochs` in the log's directory (little-endian): u32 CRC32C of the bytes after
/// it, u32 magic "QWEH", u16 format version 1, u16 reserved 0, u32 entry count, then per entry u64 epoch and
/// u64 first LSN. Replaced whole (`SmallFile`), so a crash leaves the old history or the new one.
extension EpochHistory {
    /// The file's name in the log's directory.
    package static let fileName = "epochs"
    static let magic: UInt32 = 0x4845_5751  // "QWEH"
    static let formatVersion: UInt16 = 1
    static let headerBytes = 16
    static let entryBytes = 16

    /// The file's bytes.
    package func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.headerBytes + entries.count * Self.entryBytes)
        bytes.withUnsafeMutableBytes { out in
            out.storeBytes(of: Self.magic.littleEndian, toByteOffset: 4, as: UInt32.self)
            out.storeBytes(of: Self.formatVersion.littleEndian, toByteOffset: 8, as: UInt16.self)
            out.storeBytes(of: UInt32(entries.count).littleEndian, toByteOffset: 12, as: UInt32.self)
            for (i, entry) in entries.enumerated() {
                let at = Self.headerBytes + i * Self.entryBytes
                out.storeBytes(of: entry.epoch.littleEndian, toByteOffset: at, as: UInt64.self)
                out.storeBytes(of: entry.firstLSN.rawValue.littleEndian, toByteOffset: at + 8, as: UInt64.self)
            }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: out[4...]))
            out.storeBytes(of: crc.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
        return bytes
    }

    /// The history a file holds.
    /// - Throws: `.corruption` when the bytes are not an intact history file (checksum, magic, version,
    ///   size) or break its ordering rules: a replica must not trust where its epochs start.
    package init(decoding bytes: UnsafeRawBufferPointer, path: String) throws(WALError) {
        func damaged(_ why: String) -> WALError { WALError(.corruption, "the epoch history is damaged: \(why)", path: path) }
        guard bytes.count >= Self.headerBytes else { throw damaged("\(bytes.count) bytes, shorter than its header") }
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        guard load(0, UInt32.self) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[4...])) else {
            throw damaged("checksum mismatch")
        }
        guard load(4, UInt32.self) == Self.magic else { throw damaged("not an epoch history file") }
        guard load(8, UInt16.self) == Self.formatVersion else { throw damaged("format version \(load(8, UInt16.self))") }
        let count = Int(load(12, UInt32.self))
        guard bytes.count == Self.headerBytes + count * Self.entryBytes else {
            throw damaged("\(bytes.count) bytes for \(count) entries")
        }
        self.init()
        for i in 0..<count {
            let at = Self.headerBytes + i * Self.entryBytes
            let epoch = load(at, UInt64.self), first = LSN(load(at + 8, UInt64.self))
            guard entries.last.map({ $0.epoch < epoch && $0.firstLSN < first }) ?? true else {
                throw damaged("entry \(i) (epoch \(epoch) at \(first)) does not follow the one before it")
            }
            entries.append(Entry(epoch: epoch, firstLSN: first))
        }
    }

    /// The history kept in `directory` (empty when there is no file yet). Blocking file I/O, like `save`: call
    /// both from a thread of your own, never from the cooperative pool.
    /// - Throws: `.corruption` for a damaged file, and I/O errors.
    package static func load(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) -> EpochHistory {
        guard let bytes = try SmallFile.read(name: fileName, directory: directory, fileSystem: fileSystem) else {
            return EpochHistory()
        }
        return try typedWAL { try bytes.withUnsafeBytes { try EpochHistory(decoding: $0, path: "\(directory)/\(fileName)") } }
    }

    /// Replaces the history kept in `directory` with this one, crash-safely: before a leader writes an
    /// epoch's first frame, and before a follower acks one.
    package func save(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        try SmallFile.replace(encoded(), name: Self.fileName, directory: directory, fileSystem: fileSystem)
    }
}
