import Synchronization

/// Time that moves only when a test moves it: the clock of `InMemoryCoordinator`'s leases, shared with the rest
/// of a simulation so that one `advance(by:)` moves everything, and no test sleeps.
public final class ManualClock: Sendable {
    private struct State {
        var now: Duration = .zero
        var observers: [@Sendable (Duration) -> Void] = []
    }
    private let state = Mutex(State())

    /// A clock at time zero.
    public init() {}

    /// The time since the clock was made.
    public var now: Duration { state.withLock { $0.now } }

    /// Moves time forward by `duration` (never back: a negative duration is a programming error), then tells
    /// every observer the new time, in the order they were added.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "a clock never goes back")
        let (now, observers) = state.withLock { s in
            s.now += duration
            return (s.now, s.observers)
        }
        for observe in observers { observe(now) }
    }

    /// Calls `observer` after every `advance(by:)` with the new time (outside the clock's lock, so it may read
    /// the clock).
    public func onAdvance(_ observer: @escaping @Sendable (Duration) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }
}
