import NodeWire
import Synchronization

/// One client publishing with an idempotent producer: sequence after sequence to one queue, each resent
/// (to whichever node answers) until the group gives a definite answer, so that an indeterminate outcome is
/// settled by the producer's sequence, never by guessing. It records every outcome in the `History`.
struct Producer: Sendable {
    let name: String
    let queue: String
    let ports: [Int]
    let history: History
    let stop: StopSignal

    static let requestTimeout: Duration = .seconds(3)

    func run() async {
        var node = ports.firstIndex(of: ports.randomElement()!)!
        guard let (id, epoch) = await register(node: &node) else { return }
        var sequence: UInt64 = 1
        while !stop.finishing.load(ordering: .relaxed), !stop.abandoned.load(ordering: .relaxed) {
            let body = "\(name)-\(sequence)"
            history.attempted(body)
            var sent: ContinuousClock.Instant?
            settling: while !stop.abandoned.load(ordering: .relaxed) {
                let now = ContinuousClock.now
                if sent == nil { sent = now }
                let outcome = await NodeClient.call(.publish(producer: id, epoch: epoch, queue: queue, sequence: sequence,
                                                             body: body), port: ports[node], timeout: Self.requestTimeout)
                switch outcome {
                case .reply(.stored), .reply(.duplicate):
                    history.confirmed(body, sent: sent!)
                    break settling
                case .reply(.failed(let code, let message, _)):
                    switch code {
                    case "indeterminate": history.indeterminate(body)
                    case "outOfSequence", "unknownProducer", "fenced":
                        history.anomaly("\(body): \(code): \(message)")
                        return
                    default: history.refused(body)
                    }
                case .reply(let other):
                    history.anomaly("\(body): an answer that is not a publish's: \(other)")
                    return
                case .unreachable: history.refused(body)
                case .noAnswer: history.indeterminate(body)
                }
                // Another node next time, and a moment for the group to settle.
                node = (node + 1) % ports.count
                try? await Task.sleep(for: .milliseconds(20))
            }
            sequence += 1
        }
    }

    private func register(node: inout Int) async -> (UInt64, UInt32)? {
        while !stop.abandoned.load(ordering: .relaxed) {
            if case .reply(.registered(let id, let epoch)) = await NodeClient.call(
                .registerProducer(name: name), port: ports[node], timeout: Self.requestTimeout) {
                return (id, epoch)
            }
            node = (node + 1) % ports.count
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}

/// How the campaign tells its producers to stop, and how many have.
final class StopSignal: Sendable {
    /// Set to stop after the current sequence is settled.
    let finishing = Atomic<Bool>(false)
    /// Set to stop at once (the current sequence may stay unsettled).
    let abandoned = Atomic<Bool>(false)
    /// How many producers have returned.
    let finished = Atomic<Int>(0)
}
