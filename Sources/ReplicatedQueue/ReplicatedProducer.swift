import DurableQueue

/// An idempotent producer of a replicated store (`ReplicatedQueueStore.registerProducer`): as
/// `IdempotentProducer`, but not tied to one leader's store. Its sends go to whichever member leads (forwarded
/// from a follower), checked there against the replicated state, so a send whose outcome was `.indeterminate`
/// (the leader changed under it) is resent with the same sequence and stored at most once: `.duplicate` when
/// it had been stored.
public final class ReplicatedProducer: Sendable {
    /// The name it registered under.
    public let name: String
    /// The producer's durable id (see `IdempotentProducer.id`).
    public let id: ProducerID
    /// This instance's epoch; a later registration under the same name fences it (`.fenced`).
    public let epoch: UInt32
    private let node: ReplicatedQueueStore

    init(name: String, id: ProducerID, epoch: UInt32, node: ReplicatedQueueStore) {
        self.name = name
        self.id = id
        self.epoch = epoch
        self.node = node
    }

    private var stamp: StoreRequest.ProducerStamp { .init(id: id.rawValue, epoch: epoch) }

    /// Publishes `message` to durable `queue` as `sequence` of this producer for it: `.stored(id)` once every
    /// in-sync replica holds it, `.duplicate` when that sequence was stored before.
    /// - Throws: as `IdempotentProducer.publish`, and `.notLeader` / `.notEnoughReplicas` (nothing written) or
    ///   `.indeterminate` (resend it with the same sequence).
    public func publish(to queue: String, _ message: Message, sequence: ProducerSequence) async throws(QueueError)
        -> IdempotentResult<MessageID> {
        switch try await node.carryOut(.producerSend(producer: stamp, stream: false, target: queue, message: message,
                                                     sequence: sequence.rawValue)) {
        case .done(let id): return .stored(MessageID(rawValue: id))
        case .duplicate(let original): return .duplicate(of: original.map { MessageID(rawValue: $0) })
        default: throw ReplicatedQueueStore.unexpected
        }
    }

    /// Appends `message` to `stream` as `sequence` of this producer for it; `.stored(offset)` or `.duplicate`.
    /// Throws as `publish(to:_:sequence:)`.
    public func append(to stream: String, _ message: Message, sequence: ProducerSequence) async throws(QueueError)
        -> IdempotentResult<StreamOffset> {
        switch try await node.carryOut(.producerSend(producer: stamp, stream: true, target: stream, message: message,
                                                     sequence: sequence.rawValue)) {
        case .done(let offset): return .stored(StreamOffset(rawValue: offset))
        case .duplicate(let original): return .duplicate(of: original.map { StreamOffset(rawValue: $0) })
        default: throw ReplicatedQueueStore.unexpected
        }
    }

    /// The last sequence the group holds from this producer for `queue` (nil: none), as the leader knows it.
    public func lastSequence(queue: String) async throws(QueueError) -> ProducerSequence? {
        try await lastSequence(stream: false, target: queue)
    }

    /// The last sequence the group holds from this producer for `stream` (nil: none), as the leader knows it.
    public func lastSequence(stream: String) async throws(QueueError) -> ProducerSequence? {
        try await lastSequence(stream: true, target: stream)
    }

    private func lastSequence(stream: Bool, target: String) async throws(QueueError) -> ProducerSequence? {
        guard case .sequence(let last) = try await node.carryOut(.lastSequence(producer: id.rawValue, stream: stream,
                                                                               target: target))
        else { throw ReplicatedQueueStore.unexpected }
        return last.map { ProducerSequence(rawValue: $0) }
    }
}
