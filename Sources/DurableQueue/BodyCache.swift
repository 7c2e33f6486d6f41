import DequeModule
import Synchronization

/// Recently written or read message contents by the LSN of the record holding them, bounded by bytes; the
/// oldest go first, and acked messages' contents are dropped at once (nothing reads them again), which keeps
/// room for the read-ahead of a consumer catching up on a backlog larger than the cache. Deliveries of
/// messages still in it skip the log read.
final class BodyCache: Sendable {
    private struct State {
        var messages: [UInt64: Message] = [:]
        var order: Deque<(lsn: UInt64, bytes: Int)> = []
        var bytes = 0
    }

    private let state = Mutex(State())
    let capacityBytes: Int

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    func insert(_ message: Message, at lsn: UInt64) {
        insert(CollectionOfOne((lsn, message)))
    }

    /// Inserts several under one acquisition of the lock.
    func insert<Messages: Collection<(UInt64, Message)>>(_ messages: Messages) {
        state.withLock { s in
            for (lsn, message) in messages {
                let size = message.body.count + 64
                guard size <= capacityBytes, s.messages.updateValue(message, forKey: lsn) == nil else { continue }
                s.order.append((lsn, size))
                s.bytes += size
            }
            while s.bytes > capacityBytes, let old = s.order.popFirst() {
                // An entry removed already (acked) was accounted for then.
                if s.messages.removeValue(forKey: old.lsn) != nil { s.bytes -= old.bytes }
            }
        }
    }

    /// Drops the contents of acked messages.
    func remove(_ lsns: [UInt64]) {
        state.withLock { s in
            for lsn in lsns {
                if let m = s.messages.removeValue(forKey: lsn) { s.bytes -= m.body.count + 64 }
            }
        }
    }

    func message(at lsn: UInt64) -> Message? { state.withLock { $0.messages[lsn] } }
}
