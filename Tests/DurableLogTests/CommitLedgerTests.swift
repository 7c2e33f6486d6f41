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

        init(groups: Int, syncsInFlightMax: Int) {
            ledger = Ledger(nextLSN: LSN(1), syncsInFlightMax: syncsInFlightMax)
            self.groups = groups
            lastDurable = ledger.durable
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
                confirmed.append(g)
            }
            for g in release.failed {
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
            lastDurable = ledger.durable
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
