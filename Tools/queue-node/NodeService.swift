import Coordination
import DurableQueue
import NodeWire
import ReplicatedQueue

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
            case .drain(let queue, let idle, let limit):
                return .messages(try await QueueDrain.take(from: store.leaderStore(), queue: queue, limit: limit,
                                                           idle: .milliseconds(idle)))
            case .consume, .ack:
                return .failed(code: "invalidArgument", message: "\(request) belongs to a consume session",
                               leaderHint: nil)
            }
        } catch {
            return .failed(code: "\(error.code)", message: error.message, leaderHint: error.leaderHint)
        }
    }

    private func status() -> NodeReply {
        let replica = store.replica?.description
        return switch store.role {
        case .leader(let epoch):
            .status(role: "leader", epoch: epoch, leader: nil, replica: replica, inSync: store.inSyncReplicas?.map(\.description))
        case .follower(let leader, let epoch): .status(role: "follower", epoch: epoch, leader: leader, replica: replica, inSync: nil)
        case .candidate: .status(role: "candidate", epoch: nil, leader: nil, replica: replica, inSync: nil)
        case .starting: .status(role: "starting", epoch: nil, leader: nil, replica: replica, inSync: nil)
        case .stopped: .status(role: "stopped", epoch: nil, leader: nil, replica: replica, inSync: nil)
        }
    }
}
