/// A producer whose retries never store a message twice (Kafka's idempotent producer). It has a durable id
/// and an epoch; each publish (or stream append) carries the next sequence number for its target, from 1.
/// The store keeps, per producer and target, the last sequence it stored: a retry of a sequence already
/// stored is confirmed as a duplicate and not stored again; a sequence that skips ahead is refused
/// (`.outOfSequence`); an instance with an older epoch is fenced off (`.fenced`) once a newer one
/// registered under the same name. Retrying until confirmed then neither loses nor duplicates a message.
///
/// Issue a target's sequences in order (await each, or retry from the first unconfirmed one). After a
/// restart, register again (same name: same id, next epoch) and resume after `lastSequence(...)`, or
/// resend from your own last confirmed sequence: what was stored already comes back as duplicates.
/// The state survives crashes and checkpoints; a producer idle for `StoreOptions.producerIdleExpiry` is
/// forgotten (its next publish gets `.unknownProducer`).
public final class IdempotentProducer: Sendable {
    /// The name it registered under: registering it again gives the same `id` and the next `epoch`.
    public let name: String
    /// The producer's durable id, kept by every registration under `name` until the producer is forgotten for
    /// being idle longer than `StoreOptions.producerIdleExpiry`; a registration after that gets a new id.
    public let id: ProducerID
    /// 0 at the first registration, one more at each after it. Only the latest epoch may publish; an older
    /// instance's publishes throw `.fenced`.
    public let epoch: UInt32
    let store: QueueStore

    init(name: String, id: ProducerID, epoch: UInt32, store: QueueStore) {
        self.name = name
        self.id = id
        self.epoch = epoch
        self.store = store
    }

    /// Publishes a persistent message to a durable queue as sequence `sequence` of this producer for it.
    /// Returns `.stored(messageID)` once durable, or `.duplicate` when that sequence was stored before.
    /// - Throws: `.outOfSequence`, `.fenced`, `.unknownProducer`, `.queueFull`, `.notFound`, `.logFailed`.
    public func publish(to queue: String, _ message: Message, sequence: ProducerSequence) async throws(QueueError)
        -> IdempotentResult<MessageID> {
        try store.checkFits(message)
        let qid = try store.durableQueueID(queue, for: "idempotent publishes")
        return try await send(.publish(queue: qid, time: store.options.clock.wallMilliseconds, headers: message.headers,
                                       body: message.body), target: queue, sequence: sequence.rawValue)
    }

    /// Appends to a stream as sequence `sequence` of this producer for it; `.stored(offset)` or `.duplicate`.
    public func append(to stream: String, _ message: Message, sequence: ProducerSequence) async throws(QueueError)
        -> IdempotentResult<StreamOffset> {
        try store.checkFits(message)
        let sid = try store.streamID(stream)
        return try await send(.streamAppend(stream: sid, time: store.options.clock.wallMilliseconds, headers: message.headers,
                                            body: message.body), target: stream, sequence: sequence.rawValue)
    }

    /// The last sequence the store holds from this producer for a queue (nil: none).
    public func lastSequence(queue: String) throws(QueueError) -> ProducerSequence? {
        try store.core.withLock { c throws(QueueError) in
            let (qid, _) = try c.queue(named: queue)
            return c.state.producers[id.rawValue]?.targets[qid].map { ProducerSequence(rawValue: $0.sequence) }
        }
    }

    /// The last sequence the store holds from this producer for a stream (nil: none).
    public func lastSequence(stream: String) throws(QueueError) -> ProducerSequence? {
        let sid = try store.streamID(stream)
        return store.core.withLock { c in
            c.state.producers[id.rawValue]?.targets[sid].map { ProducerSequence(rawValue: $0.sequence) }
        }
    }

    private func send<ID: StoreIdentifier>(_ operation: StoreRecord, target name: String, sequence: UInt64)
        async throws(QueueError) -> IdempotentResult<ID> {
        let id = self.id.rawValue
        guard sequence >= 1 else { throw QueueError(.invalidArgument, "sequences start at 1") }
        let (target, _) = StoreState.target(of: operation)
        // A sequence the applied (so durable) state already holds is answered without writing it again.
        // A sequence that skips ahead is written anyway: the ones before it may be in flight.
        var early = store.core.withLock { $0.state.check(producer: id, epoch: epoch, sequence: sequence, target: target) }
        if case .stampRefused(.outOfSequence) = early { early = nil }
        var effect = early ?? .none
        if early == nil {
            effect = try await store.perform([.stamped(producer: id, epoch: epoch, sequence: sequence, operation)])
        }
        switch effect {
        case .published(let messageID?): return .stored(ID(rawValue: messageID))
        case .appended(let offset): return .stored(ID(rawValue: offset))
        case .duplicate(let original): return .duplicate(of: original.map(ID.init(rawValue:)))
        case .published(nil):
            let gone = store.core.withLock { $0.state.queues[target] == nil }
            throw gone ? QueueError(.notFound, "queue '\(name)' was deleted")
                : QueueError(.queueFull, "queue '\(name)' is at its maxLength")
        case .stampRefused(.unknownProducer):
            throw QueueError(.unknownProducer, "producer '\(self.name)' (id \(id)) is not registered (expired after "
                             + "being idle?): register again and resume after lastSequence")
        case .stampRefused(.fenced(let current)):
            throw QueueError(.fenced, "producer '\(self.name)' epoch \(epoch) was fenced by epoch \(current): a newer "
                             + "instance registered; stop this one")
        case .stampRefused(.outOfSequence(let expected)):
            throw QueueError(.outOfSequence, "sequence \(sequence) for '\(name)' skips ahead: the store expects "
                             + "\(expected); resend from there")
        default:
            // An append to a deleted stream.
            throw QueueError(.notFound, "'\(name)' was deleted")
        }
    }
}

/// What an idempotent publish (`IdempotentResult<MessageID>`) or stream append (`IdempotentResult<StreamOffset>`)
/// did.
public enum IdempotentResult<ID: StoreIdentifier>: Sendable, Equatable {
    /// Stored now: the message id (queue) or offset (stream).
    case stored(ID)
    /// That sequence was stored before and is not stored again; the original's id or offset when it was the
    /// producer's last one for the target (older ones are not kept).
    case duplicate(of: ID?)
}

extension QueueStore {
    /// The producer `id` registered with `epoch`, as another instance of this store knew it (a replicated
    /// store's producer outlives each leader's store): its calls are checked against the state as any other's.
    package func producer(id: ProducerID, epoch: UInt32, name: String) -> IdempotentProducer {
        IdempotentProducer(name: name, id: id, epoch: epoch, store: self)
    }

    /// Registers an idempotent producer under `name`: the first time, a new durable id with epoch 0; again
    /// (a restarted instance), the same id with the next epoch, which fences the previous instance off.
    public func registerProducer(name: String) async throws(QueueError) -> IdempotentProducer {
        guard !name.isEmpty, name.utf8.count <= 255 else {
            throw QueueError(.invalidArgument, "a producer name is 1 to 255 bytes")
        }
        try core.withLock { c throws(QueueError) in try c.usable() }
        let effect = try await perform([.registerProducer(name: name, time: options.clock.wallMilliseconds)])
        guard case .registered(let id, let epoch) = effect else { preconditionFailure("\(effect)") }
        if epoch > 0 { telemetry.fenced(producer: name, epoch: epoch - 1) }
        return IdempotentProducer(name: name, id: ProducerID(rawValue: id), epoch: epoch, store: self)
    }
}
