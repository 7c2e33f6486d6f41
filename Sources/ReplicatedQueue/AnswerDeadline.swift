import DurableQueue
import Synchronization

/// Waits for an operation at most a given time. Past it, the caller is answered with an error while the
/// operation goes on, unobserved: a write the leader appended stays in its log, and the store applies it if
/// the group commits it later, exactly as if the caller were still waiting. Only the caller stops waiting
/// (Kafka's `request.timeout.ms`); nothing is undone, so the answer has to be `.indeterminate`.
enum AnswerDeadline {
    /// The operation's own outcome when it ends within `limit`; otherwise `late()`'s error.
    static func answer<T: Sendable>(within limit: Duration, otherwise late: @escaping @Sendable () -> QueueError,
                                    _ operation: @escaping @Sendable () async throws(QueueError) -> T)
        async throws(QueueError) -> T {
        let outcome: Result<T, QueueError> = await withCheckedContinuation { continuation in
            let answer = FirstAnswer(continuation)
            let timer = Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled { answer.give(.failure(late())) }
            }
            Task {
                let result: Result<T, QueueError>
                do throws(QueueError) { result = .success(try await operation()) } catch { result = .failure(error) }
                answer.give(result)
                timer.cancel()
            }
        }
        return try outcome.get()
    }
}

/// A continuation resumed by whichever of two parties answers first; the other's answer is dropped.
private final class FirstAnswer<T: Sendable>: Sendable {
    private let waiter: Mutex<CheckedContinuation<Result<T, QueueError>, Never>?>

    init(_ continuation: CheckedContinuation<Result<T, QueueError>, Never>) {
        waiter = Mutex(continuation)
    }

    func give(_ result: Result<T, QueueError>) {
        waiter.withLock { $0.take() }?.resume(returning: result)
    }
}
