import DurableQueue

extension StoreRequest {
    /// Carries the request out on the leader's store, as the same call made there would be.
    func execute(on store: QueueStore) async throws(QueueError) -> StoreReply {
        switch self {
        case .publish(let queue, let message, let persistent):
            return .done(try await store.publish(to: queue, message, persistent: persistent).rawValue)
        case .append(let stream, let message):
            return .done(try await store.append(to: stream, message).rawValue)
        case .commitOffset(let stream, let group, let offset):
            try await store.commitOffset(stream: stream, group: group, offset: StreamOffset(rawValue: offset))
            return .done(0)
        case .registerProducer(let name):
            let producer = try await store.registerProducer(name: name)
            return .registered(id: producer.id.rawValue, epoch: producer.epoch)
        case .producerSend(let stamp, let stream, let target, let message, let sequence):
            let producer = store.producer(id: ProducerID(rawValue: stamp.id), epoch: stamp.epoch, name: "")
            let number = ProducerSequence(rawValue: sequence)
            if stream {
                switch try await producer.append(to: target, message, sequence: number) {
                case .stored(let offset): return .done(offset.rawValue)
                case .duplicate(let original): return .duplicate(of: original?.rawValue)
                }
            }
            switch try await producer.publish(to: target, message, sequence: number) {
            case .stored(let id): return .done(id.rawValue)
            case .duplicate(let original): return .duplicate(of: original?.rawValue)
            }
        case .lastSequence(let id, let stream, let target):
            // Reading needs no epoch: any instance of the producer may ask.
            let producer = store.producer(id: ProducerID(rawValue: id), epoch: 0, name: "")
            let last = stream ? try producer.lastSequence(stream: target) : try producer.lastSequence(queue: target)
            return .sequence(last?.rawValue)
        case .transaction(let operations):
            let transaction = store.transaction()
            for operation in operations {
                switch operation {
                case .publish(let queue, let message): try transaction.publish(to: queue, message)
                case .append(let stream, let message): try transaction.append(to: stream, message)
                case .commitOffset(let stream, let group, let offset):
                    try transaction.commitOffset(stream: stream, group: group, offset: StreamOffset(rawValue: offset))
                }
            }
            let result = try await transaction.commit()
            return .committed(messageIDs: result.messageIDs.map(\.rawValue), offsets: result.offsets.map(\.rawValue))
        }
    }
}
