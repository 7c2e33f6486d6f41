import Glibc

/// A pthread mutex with condition variables: the only lock of the group committer. It is held to hand
/// buffers over and to update watermarks, never around I/O.
final class Monitor: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        // Adaptive: spin briefly before sleeping, since the lock is only ever held for a buffer hand-off.
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        precondition(pthread_mutex_init(mutex, &attributes) == 0)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { precondition(pthread_mutex_lock(mutex) == 0) }
    func unlock() { precondition(pthread_mutex_unlock(mutex) == 0) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable tied to this monitor; wait only while holding the monitor's lock.
    final class Condition: @unchecked Sendable {
        private let cond: UnsafeMutablePointer<pthread_cond_t>
        private unowned let monitor: Monitor

        init(_ monitor: Monitor) {
            self.monitor = monitor
            cond = .allocate(capacity: 1)
            precondition(pthread_cond_init(cond, nil) == 0)
        }

        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }

        func wait() { precondition(pthread_cond_wait(cond, monitor.mutex) == 0) }
        func signal() { pthread_cond_signal(cond) }
        func broadcast() { pthread_cond_broadcast(cond) }
    }

    func makeCondition() -> Condition { Condition(self) }
}
