/// A pthread mutex with condition variables: the only lock of the group committer. It is held to hand
/// buffers over and to update watermarks, never around I/O.
final class Monitor: @unchecked Sendable {
    // Adaptive: spin briefly before sleeping, since the lock is only ever held for a buffer hand-off.
    private let mutex = Platform.Mutex(adaptive: true)

    deinit { mutex.destroy() }

    func lock() { precondition(mutex.lock() == 0) }
    func unlock() { precondition(mutex.unlock() == 0) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable tied to this monitor; wait only while holding the monitor's lock.
    final class Condition: @unchecked Sendable {
        private let cond = Platform.Condition()
        private unowned let monitor: Monitor

        init(_ monitor: Monitor) { self.monitor = monitor }

        deinit { cond.destroy() }

        func wait() { precondition(cond.wait(monitor.mutex) == 0) }
        func signal() { cond.signal() }
        func broadcast() { cond.broadcast() }
    }

    func makeCondition() -> Condition { Condition(self) }
}
