import Dispatch

/// An executor with one serial lane: a job that blocks its thread blocks every other job of the executor, as
/// a blocked cooperative thread would on a small pool. Tests run the code under test on it and check that
/// another task on the same lane still runs while a sync is held open.
public final class OneLaneExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = DispatchQueue(label: "one-lane")

    public init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
