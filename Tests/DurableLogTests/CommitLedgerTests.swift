import Synchronization
import LogFormat
import Testing
@testable import DurableLog

/// The group committer's ledger, checked over every interleaving of writes, sync issues and sync returns
/// (success or failure) of up to four syncs, without threads: confirms come in LSN order, only after every
/// sync up to the covering one succeeded, never after a failure, and every waiter is completed exactly once.
@Suite(.timeLimit(.minutes(2)))
struct CommitLedgerTests {
    /// A waiter is the index of its group (groups hold records `[10 * g + 1, 10 * g + 10]`).
    typealias Ledger = CommitLedger<Int>

    /// One path through the interleavings, replayed step by step against the rules.
    struct Run {
        var ledger: Ledger
        var groups: Int
        var written = 0
        var tickets: [Ledger.Ticket] = []
        /// Per issued sync: nil while in flight, then its outcome.
        var outcomes: [Bool?] = []
        /// The sync each written group is first covered by.
        var coveringSync: [Int?] = []
        var confirmed: [Int] = []
        var failed: Set<Int> = []
        var sawFailure = false
        var lastDurable: LSN
        var lastCommitted: LSN
        /// Replicated: how many groups the in-sync replicas have reported durable (nil: a single node).
        var replicaReported: Int?

        init(groups: Int, syncsInFlightMax: Int, replicated: Bool = false) {
            ledger = Ledger(nextLSN: LSN(1), syncsInFlightMax: syncsInFlightMax,
                            replicatedThrough: replicated ? LSN.none : nil)
            self.groups = groups
            replicaReported = replicated ? 0 : nil
            lastDurable = ledger.durable
            lastCommitted = ledger.committed
        }

        /// The replicas report the next written group durable.
        mutating func replicaReport() {
            guard let reported = replicaReported, reported < written else { return }
            replicaReported = reported + 1
            check(ledger.replicasDurable(through: LSN(UInt64(10 * reported + 10))), success: true)
        }

        mutating func write() {
            let g = written
            ledger.written(through: LSN(UInt64(10 * g + 11)), waiters: [g])
            coveringSync.append(nil)
            written += 1
        }

        mutating func issue() {
            tickets.append(ledger.issueSync())
            outcomes.append(nil)
            for g in 0..<written where coveringSync[g] == nil { coveringSync[g] = tickets.count - 1 }
        }

        mutating func finish(_ s: Int, success: Bool) {
            outcomes[s] = success
            let release = ledger.syncReturned(tickets[s], success ? .success(()) : .failure(WALError(.ioFailure, "injected")))
            check(release, success: success)
        }

        mutating func check(_ release: Ledger.Release, success: Bool) {
            let newlyConfirmed = release.confirmed.flatMap(\.waiters)
            if sawFailure { #expect(newlyConfirmed.isEmpty, "a confirm after a failure") }
            for g in newlyConfirmed {
                #expect(g == confirmed.count, "group \(g) confirmed out of order (after \(confirmed))")
                guard let s = coveringSync[g] else {
                    Issue.record("group \(g) confirmed before any sync covered it")
                    continue
                }
                #expect((0...s).allSatisfy { outcomes[$0] == true },
                        "group \(g) confirmed before every sync through \(s) succeeded: \(outcomes)")
                if let reported = replicaReported {
                    #expect(g < reported, "group \(g) confirmed before the replicas reported it durable")
                }
                confirmed.append(g)
            }
            // Replicated, a written group's waiters end uncertain, never failed: a replica may hold it.
            if replicaReported != nil {
                #expect(release.failed.isEmpty, "a replicated log reported written groups failed: \(release.failed)")
            } else {
                #expect(release.uncertain.isEmpty)
            }
            for g in release.failed + release.uncertain {
                #expect(!failed.contains(g) && !confirmed.contains(g), "group \(g) completed twice")
                failed.insert(g)
            }
            if !success && !sawFailure {
                sawFailure = true
                // Everything written and not yet confirmed fails with the first failure.
                #expect(Set(confirmed).union(failed) == Set(0..<written), "a waiter was left hanging")
                #expect(release.error != nil)
                #expect(ledger.failure?.code == .logFailed)
            }
            #expect(ledger.durable >= lastDurable, "the durable watermark went back")
            #expect(ledger.committed >= lastCommitted, "the committed watermark went back")
            #expect(ledger.committed <= ledger.durable, "committed past what this disk holds")
            lastDurable = ledger.durable
            lastCommitted = ledger.committed
        }

        var inFlight: [Int] { outcomes.indices.filter { outcomes[$0] == nil } }
    }

    /// Explores every interleaving: a write before each issue, issues in order, returns in any order.
    func explore(_ run: Run, syncs: Int, visit: (Run) -> Void) {
        var moves = 0
        if run.tickets.count < syncs, run.ledger.syncsInFlight < run.ledger.syncsInFlightMax, run.ledger.failure == nil {
            var next = run
            next.write()
            #expect(next.ledger.wantsSync)
            next.issue()
            explore(next, syncs: syncs, visit: visit)
            moves += 1
        }
        if let reported = run.replicaReported, reported < run.written {
            var next = run
            next.replicaReport()
            explore(next, syncs: syncs, visit: visit)
            moves += 1
        }
        for s in run.inFlight {
            for success in [true, false] {
                var next = run
                next.finish(s, success: success)
                explore(next, syncs: syncs, visit: visit)
                moves += 1
            }
        }
        if moves == 0 { visit(run) }
    }

    @Test(arguments: 1...4)
    func everyInterleavingOfUpToFourSyncs(syncsInFlightMax: Int) {
        var paths = 0
        for syncs in 1...4 {
            explore(Run(groups: syncs, syncsInFlightMax: syncsInFlightMax), syncs: syncs) { end in
                paths += 1
                // All syncs returned: every waiter was completed exactly once.
                #expect(Set(end.confirmed).union(end.failed) == Set(0..<end.written))
                #expect(Set(end.confirmed).isDisjoint(with: end.failed))
                if !end.sawFailure {
                    #expect(end.confirmed == Array(0..<end.written))
                    #expect(end.ledger.durable == LSN(UInt64(10 * end.written)))
                }
                #expect(end.ledger.unreleasedGroups == 0)
            }
        }
        #expect(paths > (syncsInFlightMax == 1 ? 10 : 100))
    }

    /// Replicated: the same interleavings with the in-sync replicas' reports arriving at any point between
    /// them; a group is confirmed only once both this disk and the replicas hold it.
    @Test(arguments: 1...2)
    func everyInterleavingWithReplicaReports(syncsInFlightMax: Int) {
        var paths = 0
        for syncs in 1...3 {
            explore(Run(groups: syncs, syncsInFlightMax: syncsInFlightMax, replicated: true), syncs: syncs) { end in
                paths += 1
                #expect(Set(end.confirmed).union(end.failed) == Set(0..<end.written))
                if !end.sawFailure {
                    #expect(end.confirmed == Array(0..<end.written))
                    #expect(end.ledger.committed == LSN(UInt64(10 * end.written)))
                }
            }
        }
        #expect(paths > 20)
    }

    @Test func aReplicatedGroupWaitsForTheSlowerOfDiskAndReplicas() {
        var ledger = Ledger(nextLSN: LSN(1), syncsInFlightMax: 1, replicatedThrough: LSN.none)
        ledger.written(through: LSN(11), waiters: [0])
        ledger.written(through: LSN(21), waiters: [1])
        // The replicas are ahead of this disk: nothing is released before the local sync.
        #expect(ledger.replicasDurable(through: LSN(15)).isEmpty)
        let sync = ledger.issueSync()
        #expect(ledger.syncReturned(sync, .success(())).confirmed.map(\.waiters) == [[0]])
        #expect(ledger.durable == LSN(20) && ledger.committed == LSN(15))
        // A lower report later (a slower replica's) never takes the watermark back.
        #expect(ledger.replicasDurable(through: LSN(12)).isEmpty)
        #expect(ledger.committed == LSN(15))
        #expect(ledger.replicasDurable(through: LSN(20)).confirmed.map(\.waiters) == [[1]])
        #expect(ledger.committed == LSN(20))
    }

    @Test func aLaterSyncDoesNotReleaseWhatAnEarlierOneStillCovers() {
        var ledger = Ledger(nextLSN: LSN(1), syncsInFlightMax: 2)
        ledger.written(through: LSN(11), waiters: [0])
        let first = ledger.issueSync()
        ledger.written(through: LSN(21), waiters: [1])
        let second = ledger.issueSync()
        #expect(ledger.syncReturned(second, .success(())).isEmpty)
        #expect(ledger.durable == LSN.none)
        let release = ledger.syncReturned(first, .failure(WALError(.ioFailure, "EIO on write-back")))
        #expect(release.confirmed.isEmpty)
        #expect(release.failed == [0, 1])
        #expect(release.error?.code == .ioFailure)
    }

    @Test func partOfAGroupWrittenBeforeARollNeedsNoWaiter() {
        var ledger = Ledger(nextLSN: LSN(1), syncsInFlightMax: 1)
        ledger.written(through: LSN(6), waiters: [])  // records 1-5 in the old segment
        let roll = ledger.issueSync()
        #expect(ledger.syncReturned(roll, .success(())).isEmpty)
        #expect(ledger.durable == LSN(5))
        ledger.written(through: LSN(11), waiters: [7])  // the rest of the group, in the new segment
        let sync = ledger.issueSync()
        #expect(ledger.syncReturned(sync, .success(())).confirmed.map(\.waiters) == [[7]])
        #expect(ledger.durable == LSN(10))
    }

    @Test func nothingToSyncWhenNothingWasWrittenSinceTheLastIssue() {
        var ledger = Ledger(nextLSN: LSN(100), syncsInFlightMax: 1)
        #expect(!ledger.wantsSync)
        ledger.written(through: LSN(101), waiters: [0])
        #expect(ledger.wantsSync)
        let ticket = ledger.issueSync()
        #expect(!ledger.wantsSync && !ledger.hasUnsyncedWrites)
        ledger.written(through: LSN(102), waiters: [1])
        #expect(!ledger.wantsSync, "one sync in flight at most")
        _ = ledger.syncReturned(ticket, .success(()))
        #expect(ledger.wantsSync)
    }
}

/// The same rule end to end: a replicated log's append is durable here after its sync but completes only
/// when the replicas report it.
@Suite(.timeLimit(.minutes(1))) struct ReplicatedConfirmTests {
    @Test func anAppendCompletesOnlyOnceTheReplicasHoldIt() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.confirmsWaitForReplicas = true
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        let completed = Mutex<[LSN]>([])
        // One at a time, so that each is a group of its own (groups are released whole).
        for i in 1...3 {
            let record: [UInt8] = [UInt8(i)]
            try record.withUnsafeBytes { bytes in
                try log.append(bytes) { result in
                    if case .success(let lsn) = result { completed.withLock { $0.append(lsn) } }
                }
            }
            try await waitUntil("record \(i) is durable here") { log.durableLSN == LSN(UInt64(i)) }
        }
        #expect(completed.withLock { $0 }.isEmpty, "confirmed before any replica reported")
        #expect(log.committedLSN == .none)

        log.replicasDurable(through: LSN(2))
        #expect(completed.withLock { $0 } == [LSN(1), LSN(2)])
        #expect(log.committedLSN == LSN(2))
        log.replicasDurable(through: LSN(3))
        #expect(completed.withLock { $0 } == [LSN(1), LSN(2), LSN(3)])
        #expect(log.committedLSN == LSN(3))
    }

    /// A replicated leader's log that stops after records were written (and so possibly shipped) cannot say they
    /// failed: another replica may hold them and a new leader commit them. Records never written can.
    @Test func writtenButUnconfirmedAppendsOfAReplicatedLogEndIndeterminateNeverFailed() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.confirmsWaitForReplicas = true
        let disk = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: options, fileSystem: disk)
        let outcomes = Mutex<[WALError.Code]>([])
        let record: [UInt8] = [1, 2, 3]
        try record.withUnsafeBytes { bytes in
            try log.append(bytes) { result in
                if case .failure(let error) = result { outcomes.withLock { $0.append(error.code) } }
            }
        }
        try await waitUntil("the record is durable here") { log.durableLSN == LSN(1) }
        // The next write fails: the first record (written, unconfirmed) is uncertain; the second never left.
        disk.inject(.init(.write, errno: Platform.Errno.ioError))
        try record.withUnsafeBytes { bytes in
            try log.append(bytes) { result in
                if case .failure(let error) = result { outcomes.withLock { $0.append(error.code) } }
            }
        }
        try await waitUntil("both appends completed") { outcomes.withLock { $0.count } == 2 }
        #expect(outcomes.withLock { $0 }.sorted { "\($0)" < "\($1)" } == [.indeterminate, .ioFailure])
        do { try log.close(); Issue.record("a failed log closed cleanly") } catch { #expect(error.code == .logFailed) }
    }

    @Test func aReplicatedLogClosedBeforeItsReplicasConfirmedEndsItsAppendsIndeterminate() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.confirmsWaitForReplicas = true
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        let outcome = Mutex<WALError.Code?>(nil)
        let record: [UInt8] = [9]
        try record.withUnsafeBytes { bytes in
            try log.append(bytes) { result in
                if case .failure(let error) = result { outcome.withLock { $0 = error.code } }
            }
        }
        try await waitUntil("the record is durable here") { log.durableLSN == LSN(1) }
        try log.close()
        #expect(outcome.withLock { $0 } == .indeterminate)
    }
}
