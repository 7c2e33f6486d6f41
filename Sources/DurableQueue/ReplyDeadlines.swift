import DequeModule
import Synchronization

/// The callers of a replicated leader's writes that wait at most until a deadline (`QueueStore.confirmTimeout`):
/// a write taken while the in-sync set was large enough, whose followers then stopped answering, cannot commit
/// until one returns, and nothing else would end its caller's wait.
///
/// Past its deadline the caller is answered `.indeterminate` while the write goes on: it stays in the log and
/// is applied when its confirm comes, like any other (only its caller is not told), so the state stays what a
/// replay of the log gives. Nothing is undone, so nothing may be reported failed. Kept apart from the store's
/// lock (callers register here, the maintenance pass expires them): a submission's `claimAnswer` decides who
/// answers.
final class ReplyDeadlines: Sendable {
    private let waiting = Mutex(Deque<(deadline: ContinuousClock.Instant, submission: Submission)>())

    /// Notes that `submission`'s caller waits at most until `deadline`.
    func watch(_ submission: Submission, until deadline: ContinuousClock.Instant) {
        waiting.withLock { $0.append((deadline, submission)) }
    }

    /// Forgets the callers answered at the front, so that the submissions (their records) are not kept after
    /// their confirm: once per completion of the log, not per caller.
    func forgetAnswered() {
        let answered: [Submission] = waiting.withLock { waiting in
            var answered: [Submission] = []
            while let first = waiting.first, first.submission.answered.load(ordering: .acquiring) {
                answered.append(waiting.removeFirst().submission)
            }
            return answered
        }
        _ = answered  // released here, outside the lock
    }

    /// The answers for the callers whose deadline passed by `now` and who have none yet; forgets those answered.
    /// Deadlines come in the order callers registered, give or take the moment between a caller's append and
    /// its registration, so a few may wait one more pass.
    func expire(now: ContinuousClock.Instant) -> [(Reply, Result<StoreState.Effect, QueueError>)] {
        let due: [Submission] = waiting.withLock { waiting in
            var due: [Submission] = []
            while let first = waiting.first, first.deadline <= now || first.submission.answered.load(ordering: .acquiring) {
                waiting.removeFirst()
                due.append(first.submission)
            }
            return due
        }
        var answers: [(Reply, Result<StoreState.Effect, QueueError>)] = []
        for submission in due {
            let reply: Reply? = switch submission.intent {
            case .reply(let c): c
            case .settle(_, _, let c): c
            case .transaction(let c, _): c
            case .confirm, .checkout, .none: nil
            }
            guard let reply, submission.claimAnswer() else { continue }
            answers.append((reply, .failure(QueueError(.indeterminate, "not confirmed within the confirm timeout: the "
                + "group could not commit it in that time (its in-sync replicas gone?); it stays in the leader's log and "
                + "may still be committed (an idempotent producer's resend settles it)"))))
        }
        return answers
    }
}
