/// An idempotent producer's deduplication state: per target (queue or stream id), the last sequence stored
/// and what it became (message id or stream offset).
struct ProducerState: Sendable, Equatable {
    struct Last: Sendable, Equatable {
        var sequence: UInt64
        var result: UInt64
    }

    let id: UInt64
    let name: String
    var epoch: UInt32
    /// Milliseconds since 1970 of its last registration or stamped record (for idle expiry).
    var lastActive: Int64
    var targets: [UInt64: Last] = [:]

    /// Activity at `time` (records apply in log order, but their times come from several clocks' reads).
    mutating func noteActive(at time: Int64) { lastActive = max(lastActive, time) }
}

/// Why a stamped record was not stored.
public enum StampRefusal: Sendable, Equatable {
    /// The producer id is not registered (never, or it expired after being idle): register again.
    case unknownProducer
    /// A newer instance registered under the same name: this one is a zombie.
    case fenced(currentEpoch: UInt32)
    /// The sequence skips ahead: the store expects `expected` next for this target.
    case outOfSequence(expected: UInt64)
}

extension StoreState {
    mutating func register(_ name: String, time: Int64, at lsn: UInt64) -> Effect {
        if let id = producerIDs[name], var p = producers[id] {
            p.epoch &+= 1
            p.lastActive = time
            producers[id] = p
            return .registered(producer: id, epoch: p.epoch)
        }
        producerIDs[name] = lsn
        producers[lsn] = ProducerState(id: lsn, name: name, epoch: 0, lastActive: time)
        return .registered(producer: lsn, epoch: 0)
    }

    /// The target (queue or stream id) and time of a stampable operation.
    static func target(of operation: StoreRecord) -> (id: UInt64, time: Int64) {
        switch operation {
        case .publish(let q, let time, _, _), .streamAppend(let q, let time, _, _): (q, time)
        default: preconditionFailure("\(operation.kind) records are not stamped")
        }
    }

    /// How the store treats sequence `sequence` of the producer for `target` now: nil when it is the next
    /// one (store it), else the duplicate or refusal effect.
    func check(producer: UInt64, epoch: UInt32, sequence: UInt64, target: UInt64) -> Effect? {
        guard let p = producers[producer] else { return .stampRefused(.unknownProducer) }
        guard epoch == p.epoch else { return .stampRefused(.fenced(currentEpoch: p.epoch)) }
        let last = p.targets[target]
        let lastSequence = last?.sequence ?? 0
        #if !QUEUE_BROKEN_NO_DEDUPLICATION  // skipped only in harness check builds
        if sequence <= lastSequence { return .duplicate(of: sequence == lastSequence ? last?.result : nil) }
        #endif
        guard sequence == lastSequence + 1 else { return .stampRefused(.outOfSequence(expected: lastSequence + 1)) }
        return nil
    }

    mutating func applyStamped(_ operation: StoreRecord, producer: UInt64, epoch: UInt32, sequence: UInt64,
                               at lsn: UInt64) -> Effect {
        let (target, time) = Self.target(of: operation)
        if let verdict = check(producer: producer, epoch: epoch, sequence: sequence, target: target) {
            if case .duplicate = verdict { producers[producer]?.noteActive(at: time) }
            return verdict
        }
        let effect = change(operation, at: lsn)
        // A refused operation (full or deleted queue) leaves the sequence where it was, so a retry can store it.
        let result: UInt64? = switch effect {
        case .published(let id): id
        case .appended(let offset): offset
        default: nil
        }
        if let result {
            producers[producer]?.targets[target] = .init(sequence: sequence, result: result)
            producers[producer]?.noteActive(at: time)
        }
        return effect
    }

    /// A deleted queue or stream's sequences go with it.
    mutating func forgetTarget(_ id: UInt64) {
        for (p, state) in producers where state.targets[id] != nil { producers[p]?.targets[id] = nil }
    }
}
