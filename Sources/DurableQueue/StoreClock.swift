import DurableLog
import Synchronization

/// The store's sense of time, injectable so that tests (the store's and an embedder's) drive ack timeouts,
/// stream age retention, idle producer expiry and half-message check-backs by hand instead of waiting.
public protocol StoreClock: Sendable {
    /// Monotonic time: when deliveries went out (ack timeouts).
    var monotonic: ContinuousClock.Instant { get }
    /// Milliseconds since 1970: record timestamps, stream age retention, producer expiry, check-backs.
    var wallMilliseconds: Int64 { get }
}

/// The machine's clocks (the default).
public struct SystemStoreClock: StoreClock {
    /// The machine's clocks: `ContinuousClock` and the real-time clock.
    public init() {}
    public var monotonic: ContinuousClock.Instant { .now }
    public var wallMilliseconds: Int64 {
        let now = Platform.wallClock()
        return Int64(now.seconds) * 1000 + Int64(now.nanoseconds) / 1_000_000
    }
}

/// A clock that moves only when told to: both readings advance together.
public final class ManualStoreClock: StoreClock {
    private let offset = Mutex(Duration.zero)
    private let monotonicBase = ContinuousClock.now
    private let wallBase: Int64

    /// Starts at the machine's current wall time (or `wallMilliseconds`).
    public init(wallMilliseconds: Int64? = nil) {
        wallBase = wallMilliseconds ?? SystemStoreClock().wallMilliseconds
    }

    /// Moves both readings forward by `duration` (the wall reading in whole milliseconds).
    public func advance(by duration: Duration) { offset.withLock { $0 += duration } }

    public var monotonic: ContinuousClock.Instant { monotonicBase.advanced(by: offset.withLock { $0 }) }
    public var wallMilliseconds: Int64 { wallBase + offset.withLock { $0 }.milliseconds }
}
