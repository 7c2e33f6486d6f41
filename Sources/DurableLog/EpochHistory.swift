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
        while let epoch = history.lastEpoch {
            guard let answer = leader.end(ofEpochAtMost: epoch, logEnd: leaderEnd) else {
                // The leader's log holds nothing from this replica's epochs: nothing of the replica's
                // replicated records matches, from the start of its first epoch on.
                return min(end, history.entries.first?.firstLSN ?? end)
            }
            let own = history.end(ofEpochAtMost: answer.epoch, logEnd: end)?.end
                ?? history.entries.first?.firstLSN ?? end
            let cut = min(answer.end, own, end)
            if cut == end && history.lastEpoch == answer.epoch { return end }
            end = cut
            history.truncate(from: cut)
        }
        return end
    }
}
