import Dispatch
import DurableLog
import Foundation
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

/// The environment for a crash test's child: the test's own, with Swift's crash backtracer off. A child that
/// crashes (rather than being killed) then dies at once; with the backtracer on, the backtracer process would
/// inherit the child's output pipe and hold it open, and the test reading that pipe would wait forever.
public func crashChildEnvironment() -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"
    return environment
}

/// Why a finished child is a failure of the test, if it is: it ended by a signal other than the SIGKILL the
/// test sends (a crash), or exited with an error status.
public func crashChildFailure(_ child: Process) -> String? {
    switch child.terminationReason {
    case .uncaughtSignal where child.terminationStatus == SIGKILL: nil
    case .uncaughtSignal: "the child crashed with signal \(child.terminationStatus)"
    case .exit where child.terminationStatus != 0: "the child exited with status \(child.terminationStatus)"
    default: nil
    }
}
