import NodeWire
import Synchronization

/// One client consuming the queue while the faults go on: a `consume` session on one node after another (the
/// leader serves it; the others answer `notLeader`), acking each delivery after recording it. What it saw goes
/// to `Deliveries`.
struct ChaosConsumer: Sendable {
    let queue: String
    let ports: [Int]
    let deliveries: Deliveries
    let stop: StopSignal

    func run() async {
        var node = Int.random(in: 0..<ports.count)
        while !stop.finishing.load(ordering: .relaxed), !stop.abandoned.load(ordering: .relaxed) {
            let stop = self.stop, deliveries = self.deliveries
            _ = await NodeClient.session(.consume(queue: queue, idleMilliseconds: 500), port: ports[node],
                                         quiet: .seconds(3)) { reply in
                switch reply {
                case .delivered(let id, let body, let tag):
                    deliveries.delivered(id: id, body: body)
                    // A session ends between deliveries once the campaign winds down: the node returns what
                    // it did not ack to the queue, for the final drain.
                    return stop.finishing.load(ordering: .relaxed) ? nil : [.ack(tag: tag)]
                case .acked(let id):
                    deliveries.acked(id: id)
                    return []
                default:
                    return nil  // `.failed` (not the leader, or it stopped leading): try another node
                }
            }
            node = (node + 1) % ports.count
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// What consumers were given, in order: each delivery (message id and body) and each confirmed ack. The final
/// drain's messages join it at the end.
final class Deliveries: Sendable {
    enum Event: Equatable {
        case delivered(id: UInt64, body: String)
        case acked(id: UInt64)
    }

    private let events = Mutex<[Event]>([])

    func delivered(id: UInt64, body: String) { events.withLock { $0.append(.delivered(id: id, body: body)) } }
    func acked(id: UInt64) { events.withLock { $0.append(.acked(id: id)) } }

    var all: [Event] { events.withLock { $0 } }
    var ackedCount: Int { events.withLock { $0.count { if case .acked = $0 { true } else { false } } } }
}
