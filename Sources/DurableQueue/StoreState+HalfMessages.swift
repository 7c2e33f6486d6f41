/// A half message: durable, invisible to consumers until committed.
struct HalfMessageEntry: Sendable, Equatable {
    var queue: UInt64
    /// Its id (the prepare record's LSN) and where its body is; what enters the queue at commit.
    var entry: MessageEntry
    /// Milliseconds since 1970.
    var preparedAt: Int64
    /// Check-backs that went unanswered, and when the last one was (`preparedAt` before the first).
    var checks: UInt16
    var lastCheckAt: Int64
}

/// What a half message's resolution record did.
enum HalfResolution: Sendable, Equatable {
    case committed
    case rolledBack
    /// Not pending: resolved before (by the application or a check-back).
    case notPending
    /// Its queue is at `maxLength` with `.rejectPublish`: still pending.
    case queueFull
    /// Its queue was deleted since the prepare: dropped.
    case queueGone
}

extension StoreState {
    mutating func resolveHalf(_ id: UInt64, _ outcome: StoreRecord.HalfOutcome) -> HalfResolution {
        guard let half = halfMessages[id] else { return .notPending }
        switch outcome {
        case .commit:
            guard queues[half.queue] != nil else {
                // Deleted since the prepare: the message goes with it, as a publish to it would.
                halfMessages[id] = nil
                return .queueGone
            }
            guard enqueue(half.entry, into: half.queue) else { return .queueFull }
            halfMessages[id] = nil
            return .committed
        case .rollback, .expired:
            halfMessages[id] = nil
            return .rolledBack
        case .moved(let target):
            var entry = half.entry
            entry.deathReason = DeadLetterReason.halfMessageUnresolved.rawValue
            _ = enqueue(entry, into: target, force: true)
            halfMessages[id] = nil
            return .rolledBack
        }
    }
}
