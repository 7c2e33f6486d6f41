import Synchronization

/// Every outcome the clients saw, by message body ("<producer>-<sequence>"): the input of `Checker`.
final class History: Sendable {
    struct Entry {
        /// An attempt got `indeterminate`, no answer, or a dropped connection: it may have been stored.
        var indeterminate = false
        /// An attempt got a definite refusal (nothing written).
        var refused = false
        /// When the sequence was first sent, and when its confirm arrived.
        var confirmed: (sent: ContinuousClock.Instant, at: ContinuousClock.Instant)?
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var anomalies: [String] = []
    }

    private let state = Mutex(State())

    func attempted(_ body: String) { state.withLock { _ = $0.entries[body, default: Entry()] } }
    func indeterminate(_ body: String) { state.withLock { $0.entries[body, default: Entry()].indeterminate = true } }
    func refused(_ body: String) { state.withLock { $0.entries[body, default: Entry()].refused = true } }

    func confirmed(_ body: String, sent: ContinuousClock.Instant) {
        state.withLock { $0.entries[body, default: Entry()].confirmed = (sent, .now) }
    }

    /// Something a correct cluster never answers (an out-of-sequence refusal, an unknown producer).
    func anomaly(_ text: String) { state.withLock { $0.anomalies.append(text) } }

    var entries: [String: Entry] { state.withLock { $0.entries } }
    var anomalies: [String] { state.withLock { $0.anomalies } }

    var confirmedCount: Int { state.withLock { $0.entries.values.count { $0.confirmed != nil } } }

    /// The longest time between `start` and `end` without a confirm arriving: from `start` to the first
    /// confirm, between two confirms, and from the last one to `end`.
    func longestGapWithoutConfirms(from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Duration {
        let arrivals = state.withLock { s in
            s.entries.values.compactMap { $0.confirmed?.at }.filter { $0 >= start && $0 <= end }
        }.sorted()
        var longest = Duration.zero, previous = start
        for arrival in arrivals + [end] {
            longest = max(longest, arrival - previous)
            previous = arrival
        }
        return longest
    }

    /// The first confirm of a request sent at or after `instant`, if any yet.
    func firstConfirm(sentAfter instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        state.withLock { s in
            s.entries.values.compactMap { entry in entry.confirmed.flatMap { $0.sent >= instant ? $0.at : nil } }.min()
        }
    }
}
