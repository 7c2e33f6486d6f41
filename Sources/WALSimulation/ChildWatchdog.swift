import Dispatch
import DurableLog
import Synchronization

/// Kills a child process that is still running after a deadline: for crash tests that read a child's output
/// until it dies, so that a child that stops making progress fails the test quickly instead of hanging the run.
public final class ChildWatchdog: Sendable {
    private enum State { case armed, disarmed, fired }
    private let state = Mutex(State.armed)

    public init(pid: Int32, seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            let fire = state.withLock { s -> Bool in
                guard s == .armed else { return false }
                s = .fired
                return true
            }
            if fire { Platform.killProcess(pid) }
        }
    }

    /// Stops the watchdog; true when it had already killed the child.
    public func disarm() -> Bool {
        state.withLock { s in
            defer { if s == .armed { s = .disarmed } }
            return s == .fired
        }
    }
}
