import DurableLog
import DurableQueue
import Logging
import Replication
import Synchronization

/// The store of each term this node leads: opened on the term's log when the term begins (the checkpoint,
/// then a replay of the log, then a session-start record that commits only once the in-sync replicas hold
/// the whole log), relinquished when it ends.
final class StoreLeadership: LeaderService {
    private enum Term {
        case none
        case opening(id: Int, Task<QueueStore, any Error>, log: WriteAheadLog, gate: @Sendable () -> QueueError?)
        case serving(QueueStore)
        case failed(QueueError)
    }

    private let directory: String
    private let options: StoreOptions
    private let confirmTimeout: Duration
    private let logger: Logger
    private let term = Mutex(Term.none)
    private let terms = Atomic(0)
    /// The copy of the state this replica kept while it followed: where a term's store starts.
    let applier: FollowerApplier

    init(directory: String, options: StoreOptions, confirmTimeout: Duration, logger: Logger) {
        self.directory = directory
        self.options = options
        self.confirmTimeout = confirmTimeout
        self.logger = logger
        applier = FollowerApplier(directory: directory, options: options, logger: logger)
    }

    func startLeading(log: WriteAheadLog, epoch: UInt64, writeRefusal: @escaping @Sendable () -> WALError?,
                      stepDown: @escaping @Sendable () -> Void) {
        let gate: @Sendable () -> QueueError? = { writeRefusal().map(QueueError.from) }
        let (directory, options, applier, confirmTimeout) = (self.directory, self.options, self.applier, self.confirmTimeout)
        let id = terms.add(1, ordering: .relaxed).newValue
        let opening = Task { () throws -> QueueStore in
            await applier.pause()
            return try await QueueStore.open(directory: directory, options: options, log: log, writeGate: gate,
                                             confirmTimeout: confirmTimeout, warm: applier.follower)
        }
        term.withLock { $0 = .opening(id: id, opening, log: log, gate: gate) }
        Task { [self] in
            let result = await opening.result
            // Only while the term still waits for this store: `stopLeading` takes over otherwise.
            let taken = term.withLock { t -> Bool in
                guard case .opening(let current, _, _, _) = t, current == id else { return false }
                switch result {
                case .success(let store): t = .serving(store)
                case .failure(let error): t = .failed(Self.queueError(error))
                }
                return true
            }
            if taken, case .failure(let error) = result {
                // Its log is closed with it: this node cannot lead this term. Another member may.
                logger.error("the store of epoch \(epoch) could not open on this leader, which steps down: \(error)")
                stepDown()
            }
        }
    }

    func stopLeading() async {
        let ended = term.withLock { t -> Term in
            defer { t = .none }
            return t
        }
        let reason = QueueError(.notLeader, "this node stopped leading its group")
        switch ended {
        case .opening(_, let opening, let log, _):
            // The store waits for its session start to commit, which may never come now: closing the log ends
            // that wait (the record becomes indeterminate) and the open with it.
            try? await log.shutdown()
            if case .success(let store) = await opening.result { await store.relinquish(reason) }
        case .serving(let store):
            await store.relinquish(reason)
        case .none, .failed:
            break
        }
        applier.resume()
    }

    /// A write a follower forwarded: carried out on this term's store as if made here, answered once confirmed.
    func handle(request body: [UInt8]) async -> [UInt8] {
        let reply: StoreReply
        do throws(QueueError) {
            let request: StoreRequest
            do { request = try StoreRequest(decoding: body) } catch {
                throw QueueError(.invalidArgument, "a malformed request from a follower: \(error)")
            }
            let store = try await store(notLeading: { QueueError(.notLeader, "this node no longer leads its group") })
            reply = try await request.execute(on: store)
        } catch {
            reply = StoreReply(error)
        }
        return reply.encoded
    }

    /// The store of the current term; waits for it while it opens and writes could be confirmed, at most
    /// `confirmTimeout` (by the store's clock): a term whose session start the in-sync replicas never
    /// acknowledge would otherwise hold its callers for as long as the replicas stay silent.
    func store(notLeading: @Sendable () -> QueueError) async throws(QueueError) -> QueueStore {
        switch term.withLock({ $0 }) {
        case .serving(let store):
            return store
        case .opening(_, let opening, _, let gate):
            if let refusal = gate() { throw refusal }
            #if REPLICATION_BROKEN_UNBOUNDED_TERM_START  // BROKEN ON PURPOSE (harness check builds only)
            let result = await opening.result
            #else
            guard let result = await Self.result(of: opening, deadline: options.clock.monotonic.advanced(by: confirmTimeout),
                                                 clock: options.clock, poll: options.maintenanceInterval) else {
                throw gate() ?? QueueError(
                    .notEnoughReplicas, "this node's term has not started: its in-sync replicas did not acknowledge "
                    + "the log within the confirm timeout (\(confirmTimeout)); nothing was written")
            }
            #endif
            switch result {
            case .success(let store): return store
            case .failure(let error):
                let error = Self.queueError(error)
                // Stepped down while it opened: its session start was left indeterminate by the closed log.
                throw error.code == .indeterminate || error.code == .closed ? notLeading() : error
            }
        case .failed(let error):
            throw error
        case .none:
            throw notLeading()
        }
    }

    /// The opening's result, or nil once `clock` passes `deadline` (looked at every `poll` of real time, as the
    /// store's maintenance looks at its reply deadlines). The opening goes on either way; whichever comes
    /// first answers, and the other's task ends with it (the opening's waiter when the opening does).
    private static func result(of opening: Task<QueueStore, any Error>, deadline: ContinuousClock.Instant,
                               clock: any StoreClock, poll: Duration) async -> Result<QueueStore, any Error>? {
        let first = FirstAnswer<Result<QueueStore, any Error>?>()
        return await withCheckedContinuation { continuation in
            first.waitWith(continuation)
            Task { first.answer(await opening.result) }
            Task {
                while !first.isAnswered && clock.monotonic < deadline { try? await Task.sleep(for: poll) }
                first.answer(nil)
            }
        }
    }

    private static func queueError(_ error: any Error) -> QueueError {
        error as? QueueError ?? QueueError(.invalidStore, "opening the store failed: \(error)")
    }
}

/// One answer for one waiter, from whichever of several racers gives it first; the later ones are dropped.
private final class FirstAnswer<Value: Sendable>: Sendable {
    private let state = Mutex<(waiter: CheckedContinuation<Value, Never>?, answered: Bool)>((nil, false))

    var isAnswered: Bool { state.withLock { $0.answered } }

    func waitWith(_ waiter: CheckedContinuation<Value, Never>) { state.withLock { $0.waiter = waiter } }

    func answer(_ value: Value) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, Never>? in
            guard !s.answered else { return nil }
            s.answered = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }
}
