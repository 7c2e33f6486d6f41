import DequeModule
import Synchronization

/// Recently written or read message contents by the LSN of the record holding them, bounded by bytes; the
/// oldest go first. Deliveries of messages still in it skip the log read.
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
        let size = message.body.count + 64
        guard size <= capacityBytes else { return }
        state.withLock { s in
            guard s.messages.updateValue(message, forKey: lsn) == nil else { return }
            s.order.append((lsn, size))
            s.bytes += size
            while s.bytes > capacityBytes, let old = s.order.popFirst() {
                s.messages[old.lsn] = nil
                s.bytes -= old.bytes
            }
        }
    }

    func message(at lsn: UInt64) -> Message? { state.withLock { $0.messages[lsn] } }
}
