import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// The epoch history's rules, and truncation by epoch checked against simulated replica groups: after any
/// sequence of appends, partial replication and elections (clean or not), a replica that rejoins cuts its log
/// exactly to the longest prefix it shares with the new leader's.
@Suite(.timeLimit(.minutes(1))) struct EpochHistoryTests {
    @Test func epochsAndTheirStartsOnlyGrow() throws {
        var h = EpochHistory()
        try h.begin(epoch: 2, at: LSN(1))
        try h.begin(epoch: 5, at: LSN(10))
        let same = #expect(throws: WALError.self) { try h.begin(epoch: 5, at: LSN(20)) }
        let lower = #expect(throws: WALError.self) { try h.begin(epoch: 4, at: LSN(20)) }
        #expect(same?.code == .invalidArgument && lower?.code == .invalidArgument)
        let early = #expect(throws: WALError.self) { try h.begin(epoch: 6, at: LSN(9)) }
        #expect(early?.code == .invalidArgument)
        // An epoch starting where the last one did replaces it: the last one holds no record.
        try h.begin(epoch: 6, at: LSN(10))
        #expect(h.entries == [.init(epoch: 2, firstLSN: LSN(1)), .init(epoch: 6, firstLSN: LSN(10))])
    }

    @Test func theEndOfAnEpochIsWhereTheNextBegins() throws {
        var h = EpochHistory()
        try h.begin(epoch: 1, at: LSN(1))
        try h.begin(epoch: 3, at: LSN(50))
        #expect(h.end(ofEpochAtMost: 1, logEnd: LSN(80))! == (1, LSN(50)))
        #expect(h.end(ofEpochAtMost: 2, logEnd: LSN(80))! == (1, LSN(50)))
        #expect(h.end(ofEpochAtMost: 3, logEnd: LSN(80))! == (3, LSN(80)))
        #expect(h.end(ofEpochAtMost: 0, logEnd: LSN(80)) == nil)
        h.truncate(from: LSN(50))
        #expect(h.lastEpoch == 1)
    }

    /// Raft's figure 8 in this model: the replica's last epoch never reached the new leader, which went on
    /// from an older one. Comparing only the last epoch would keep the replica's divergent record.
    @Test func aTailOfAnEpochTheLeaderNeverSawIsCut() throws {
        var leader = EpochHistory(), replica = EpochHistory()
        try leader.begin(epoch: 1, at: LSN(1))
        try leader.begin(epoch: 3, at: LSN(102))  // epoch 1 holds 1...101 on the leader
        try replica.begin(epoch: 1, at: LSN(1))
        try replica.begin(epoch: 2, at: LSN(101))  // epoch 1 holds 1...100 here, then 101 under epoch 2
        let cut = EpochHistory.truncationPoint(leader: leader, leaderEnd: LSN(110), replica: replica, replicaEnd: LSN(102))
        #expect(cut == LSN(101))
    }

    /// The leader's answer names an epoch the replica never had (8, asked about 9): the replica's records of
    /// its own epoch 7 past where the leader's epoch 7 ended are not the leader's either. Cutting at the end of
    /// the leader's epoch 8 would keep two of them (found by `wal-torture --cluster`, seed 2706 from 1000).
    @Test func anAnswerNamingAnEpochTheReplicaNeverHadCutsBackToTheEpochBelowIt() throws {
        var leader = EpochHistory(), replica = EpochHistory()
        for (epoch, first) in [(1, 1), (7, 69), (8, 75), (10, 77)] { try leader.begin(epoch: UInt64(epoch), at: LSN(UInt64(first))) }
        for (epoch, first) in [(1, 1), (7, 69), (9, 88)] { try replica.begin(epoch: UInt64(epoch), at: LSN(UInt64(first))) }
        #expect(replica.rejoinStep(end: LSN(92), answer: (8, LSN(77))) == LSN(88), "first its epoch 9, which the leader lacks")
        let cut = EpochHistory.truncationPoint(leader: leader, leaderEnd: LSN(133), replica: replica, replicaEnd: LSN(92))
        #expect(cut == LSN(75))
    }

    @Test func theHistoryFileRoundTripsAndIsReplacedWhole() throws {
        let dir = TemporaryDirectory()
        #expect(try EpochHistory.load(directory: dir.path) == EpochHistory(), "no file: an empty history")
        var history = EpochHistory()
        try history.begin(epoch: 3, at: LSN(1))
        try history.begin(epoch: 7, at: LSN(1_000_000))
        try history.save(directory: dir.path)
        #expect(try EpochHistory.load(directory: dir.path) == history)

        // A replacement that fails before its rename leaves the old history in place.
        let fs = FaultInjectingFileSystem()
        fs.inject(.init(.rename, sticky: false))
        var longer = history
        try longer.begin(epoch: 9, at: LSN(2_000_000))
        let failed = #expect(throws: WALError.self) { try longer.save(directory: dir.path, fileSystem: fs) }
        #expect(failed?.code == .ioFailure)
        #expect(try EpochHistory.load(directory: dir.path) == history)
        try longer.save(directory: dir.path, fileSystem: fs)
        #expect(try EpochHistory.load(directory: dir.path) == longer)
    }

    @Test(arguments: [0, 5, 13, 20, 40])
    func aDamagedHistoryFileIsRefusedNotTrusted(flippedByte: Int) throws {
        var history = EpochHistory()
        try history.begin(epoch: 1, at: LSN(1))
        try history.begin(epoch: 2, at: LSN(50))
        var bytes = history.encoded()
        #expect(bytes.count == 48)
        bytes[flippedByte] ^= 0x40
        let error = #expect(throws: WALError.self) {
            try bytes.withUnsafeBytes { try EpochHistory(decoding: $0, path: "epochs") }
        }
        #expect(error?.code == .corruption)
        // Cut short: refused too.
        let short = #expect(throws: WALError.self) {
            try history.encoded().dropLast(16).withUnsafeBytes { try EpochHistory(decoding: $0, path: "epochs") }
        }
        #expect(short?.code == .corruption)
    }

    /// A replica in the simulation: each record is known by the epoch it was written under (one leader per
    /// epoch writes each LSN once, so equal epochs at an LSN mean equal records).
    struct Replica {
        var log: [UInt64] = []
        var history = EpochHistory()
        var end: LSN { LSN(UInt64(log.count + 1)) }

        mutating func copy(from leader: Replica, upTo count: Int) throws {
            while log.count < min(count, leader.log.count) {
                let epoch = leader.log[log.count]
                if history.lastEpoch != epoch { try history.begin(epoch: epoch, at: end) }
                log.append(epoch)
            }
        }

        mutating func truncate(to lsn: LSN) {
            log.removeLast(log.count - Int(lsn.rawValue - 1))
            history.truncate(from: lsn)
        }
    }

    @Test(arguments: 0..<1_000)
    func rejoiningReplicasCutToTheLongestSharedPrefix(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var replicas = [Replica](repeating: Replica(), count: 3)
        var leader = 0
        var epoch: UInt64 = 1
        try replicas[leader].history.begin(epoch: epoch, at: replicas[leader].end)
        var following: Set<Int> = []  // replicas that reconciled with the current leader
        for _ in 0..<120 {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<4:  // the leader appends
                replicas[leader].log += Array(repeating: epoch, count: Int.random(in: 1...4, using: &rng))
            case 4..<7:  // a follower that reconciled copies part of what the leader has
                guard let f = following.randomElement(using: &rng) else { continue }
                let upTo = Int.random(in: replicas[f].log.count...replicas[leader].log.count, using: &rng)
                try replicas[f].copy(from: replicas[leader], upTo: upTo)
            case 7..<9:  // a follower rejoins: truncation by epoch
                let f = Int.random(in: 0..<3, using: &rng)
                guard f != leader else { continue }
                let cut = EpochHistory.truncationPoint(leader: replicas[leader].history, leaderEnd: replicas[leader].end,
                                                       replica: replicas[f].history, replicaEnd: replicas[f].end)
                let shared = zip(replicas[f].log, replicas[leader].log).prefix { $0 == $1 }.count
                // Each round's cut, as a follower makes them one at a time on its log: at an epoch boundary of
                // the replica's log or within the prefix it shares with the leader, so always where a frame
                // ends (a frame holds one epoch; frames within a shared epoch are the same on both).
                var history = replicas[f].history, end = replicas[f].end
                while let step = history.rejoinStep(end: end, answer: history.lastEpoch.flatMap {
                    replicas[leader].history.end(ofEpochAtMost: $0, logEnd: replicas[leader].end)
                }) {
                    let at = Int(step.rawValue) - 1, log = replicas[f].log
                    #expect(at <= shared || at == log.count || log[at] != log[at - 1],
                            "seed \(seed): a round cut at \(step), inside epoch \(log[at - 1]) of \(log) (leader \(replicas[leader].log))")
                    end = step
                    history.truncate(from: step)
                }
                #expect(cut == LSN(UInt64(shared + 1)),
                        "seed \(seed): cut at \(cut), shared prefix ends at \(shared + 1): \(replicas[f].log) vs \(replicas[leader].log)")
                replicas[f].truncate(to: cut)
                following.insert(f)
            default:  // an election, clean or not: any replica leads the next epoch from its own end
                leader = Int.random(in: 0..<3, using: &rng)
                epoch += 1
                try replicas[leader].history.begin(epoch: epoch, at: replicas[leader].end)
                following = []
            }
            for r in replicas { #expect(Self.historyMatchesLog(r), "seed \(seed): \(r.history.entries) vs \(r.log)") }
        }
    }

    /// Every run of one epoch in the log starts where the history says, and the history names nothing else
    /// (bar an epoch begun at the log's end, with no record yet).
    static func historyMatchesLog(_ r: Replica) -> Bool {
        var starts: [EpochHistory.Entry] = []
        for (i, epoch) in r.log.enumerated() where i == 0 || r.log[i - 1] != epoch {
            starts.append(.init(epoch: epoch, firstLSN: LSN(UInt64(i + 1))))
        }
        var entries = r.history.entries
        if let last = entries.last, last.firstLSN == r.end { entries.removeLast() }
        return entries == starts
    }
}
