/// Transactions in the state machine: a commit applies all of its operations or none.
extension StoreState {
    /// Why a transaction's operations cannot all apply now, or nil when they can. Checked before any of
    /// them is applied, so that a refused commit changes nothing.
    func refusal(of operations: [(lsn: UInt64, record: StoreRecord)], expecting parts: Int) -> String? {
        guard operations.count == parts else {
            return "the log holds \(operations.count) of the transaction's \(parts) operations"
        }
        var adding: [UInt64: Int] = [:]
        var acking: Set<UInt64> = []
        for (_, record) in operations {
            switch record {
            case .publish(let q, _, _, _):
                guard queues[q] != nil else { return "a queue it publishes to was deleted" }
                adding[q, default: 0] += 1
            case .streamAppend(let s, _, _, _), .commitOffset(let s, _, _):
                guard streams[s] != nil else { return "a stream it writes to was deleted" }
            case .ack(let q, let ids):
                guard let queue = queues[q] else { return "the queue of a message it acks was deleted" }
                for id in ids {
                    guard queue.unacked[id] != nil, acking.insert(id).inserted else {
                        return "message \(id) it acks is no longer out with a consumer (returned by a restart)"
                    }
                }
            default:
                return "a \(record.kind) record cannot be part of a transaction"
            }
        }
        for (q, n) in adding {
            guard let queue = queues[q] else { return "a queue it publishes to was deleted" }
            if let max = queue.options.maxLength, queue.options.overflow == .rejectPublish, queue.readyCount + n > max {
                return "queue '\(queue.name)' has no room for \(n) more messages (maxLength \(max), rejectPublish)"
            }
        }
        return nil
    }
}
