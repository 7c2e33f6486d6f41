import DurableQueue
import NodeWire
import ReplicatedQueue
import Synchronization

/// Carries out test clients' requests on this node's replicated store.
struct NodeService: Sendable {
    let store: ReplicatedQueueStore

    func handle(_ request: NodeRequest) async -> NodeReply {
        do {
            switch request {
            case .status:
                return status()
            case .declareQueue(let name):
                try await store.leaderStore().declareQueue(name)
                return .done
            case .registerProducer(let name):
                let producer = try await store.registerProducer(name: name)
                return .registered(producer: producer.id.rawValue, epoch: producer.epoch)
            case .publish(let producer, let epoch, let queue, let sequence, let body):
                let sender = store.producer(id: ProducerID(rawValue: producer), epoch: epoch, name: "client")
                switch try await sender.publish(to: queue, Message(body: Array(body.utf8)),
                                                sequence: ProducerSequence(rawValue: sequence)) {
                case .stored(let id): return .stored(id: id.rawValue)
                case .duplicate: return .duplicate
                }
            case .drain(let queue, let idle):
                return .messages(try await drain(queue, idle: .milliseconds(idle)))
            case .consume, .ack:
                return .failed(code: "invalidArgument", message: "\(request) belongs to a consume session",
                               leaderHint: nil)
            }
        } catch {
            return .failed(code: "\(error.code)", message: error.message, leaderHint: error.leaderHint)
        }
    }

    private func status() -> NodeReply {
        switch store.role {
        case .leader(let epoch): .status(role: "leader", epoch: epoch, leader: nil)
        case .follower(let leader, let epoch): .status(role: "follower", epoch: epoch, leader: leader)
        case .candidate: .status(role: "candidate", epoch: nil, leader: nil)
        case .starting: .status(role: "starting", epoch: nil, leader: nil)
        case .stopped: .status(role: "stopped", epoch: nil, leader: nil)
        }
    }

    /// Consumes and acks until no delivery has come for `idle`. A message is gathered before its ack, so that
    /// an ack cut short never hides one that was taken off the queue. An ack that fails ends the drain with
    /// its error: what was gathered would be an incomplete answer.
    private func drain(_ queue: String, idle: Duration) async throws(QueueError) -> [DrainedMessage] {
        let leader = try await store.leaderStore()
        let consumer = try leader.consume(queue: queue, prefetch: 512)
        let gathered = Mutex<(messages: [DrainedMessage], last: ContinuousClock.Instant, failure: QueueError?)>(([], .now, nil))
        let reader = Task {
            do {
                for try await delivery in consumer.deliveries {
                    let taken = DrainedMessage(id: delivery.messageID.rawValue,
                                               body: String(decoding: delivery.message.body, as: UTF8.self))
                    gathered.withLock { $0.messages.append(taken); $0.last = .now }
                    try await consumer.ack(delivery.tag)
                    gathered.withLock { $0.last = .now }
                }
            } catch let error as QueueError {
                gathered.withLock { $0.failure = error }
            } catch {
                gathered.withLock { $0.failure = QueueError(.cancelled, "\(error)") }
            }
        }
        // Polled: an empty queue does not end a consumer's iteration, only a quiet spell does.
        while gathered.withLock({ ContinuousClock.now - $0.last < idle && $0.failure == nil }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        reader.cancel()
        await reader.value
        let result = gathered.withLock { $0 }
        if let failure = result.failure, failure.code != .cancelled { throw failure }
        return result.messages
    }
}
