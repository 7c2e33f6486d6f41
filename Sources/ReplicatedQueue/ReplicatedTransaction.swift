import DurableQueue
import Synchronization

/// Publishes, stream appends and offset commits made durable and visible at once, through a replicated store
/// (`ReplicatedQueueStore.transaction()`): gathered here, then committed as one on the leader's store
/// (forwarded from a follower), and confirmed once every in-sync replica holds it. Acks in a transaction need
/// the consumer's store: use `QueueStore.transaction()` on the leader's store for those.
public final class ReplicatedTransaction: Sendable {
    private struct State {
        var operations: [StoreRequest.TransactionOperation] = []
        var finished = false
    }

    private let node: ReplicatedQueueStore
    private let state = Mutex(State())

    init(node: ReplicatedQueueStore) { self.node = node }

    /// Adds a publish of `message` to `queue` (checked by the leader at the commit).
    public func publish(to queue: String, _ message: Message) throws(QueueError) {
        try add(.publish(queue: queue, message: message))
    }

    /// Adds an append of `message` to `stream`.
    public func append(to stream: String, _ message: Message) throws(QueueError) {
        try add(.append(stream: stream, message: message))
    }

    /// Adds a commit of `group`'s offset on `stream`.
    public func commitOffset(stream: String, group: String, offset: StreamOffset) throws(QueueError) {
        try add(.commitOffset(stream: stream, group: group, offset: offset.rawValue))
    }

    private func add(_ operation: StoreRequest.TransactionOperation) throws(QueueError) {
        try state.withLock { s throws(QueueError) in
            guard !s.finished else { throw Self.finishedError }
            s.operations.append(operation)
        }
    }

    /// Commits every operation as one; returns the published messages' ids and the appends' offsets in order.
    /// - Throws: as `Transaction.commit()` on the leader (`.transactionAborted` when refused whole; none of it
    ///   applied); `.notLeader` / `.notEnoughReplicas` (nothing written); `.indeterminate` when the leader
    ///   changed before it answered (the transaction may or may not have committed, whole or not at all).
    @discardableResult
    public func commit() async throws(QueueError) -> TransactionResult {
        let operations = try state.withLock { s throws(QueueError) in
            guard !s.finished else { throw Self.finishedError }
            s.finished = true
            return s.operations
        }
        guard !operations.isEmpty else { return TransactionResult(messageIDs: [], offsets: []) }
        guard case .committed(let ids, let offsets) = try await node.carryOut(.transaction(operations)) else {
            throw ReplicatedQueueStore.unexpected
        }
        return TransactionResult(messageIDs: ids.map { MessageID(rawValue: $0) }, offsets: offsets.map { StreamOffset(rawValue: $0) })
    }

    /// Discards the operations. Does nothing after a commit.
    public func rollback() { state.withLock { $0.finished = true } }

    private static let finishedError = QueueError(.invalidArgument, "the transaction was already committed or rolled back")
}
