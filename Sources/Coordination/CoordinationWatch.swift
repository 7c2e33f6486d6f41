/// The changes of a group's keys, as `Coordinator.watch(after:)` streams them: one `GroupSnapshot` per changed
/// revision, in order, ending with a `CoordinationError` (never with nil while the coordinator is reachable).
/// Cancelling the consuming task ends it and releases what it holds (etcd's watch connection).
public struct CoordinationWatch: AsyncSequence, Sendable {
    /// A snapshot of the group at the revision of one change.
    public typealias Element = GroupSnapshot
    /// Every way a watch ends other than cancellation.
    public typealias Failure = CoordinationError

    let base: AsyncThrowingStream<GroupSnapshot, any Error>

    /// A watch fed by a stream whose errors are `CoordinationError`s (anything else reads as `.unavailable`).
    init(_ base: AsyncThrowingStream<GroupSnapshot, any Error>) { self.base = base }

    /// A watch and the continuation that feeds it; `onCancel` runs when the consumer goes away.
    static func makeStream(bufferLimit: Int = 4096, onCancel: @escaping @Sendable () -> Void)
        -> (CoordinationWatch, AsyncThrowingStream<GroupSnapshot, any Error>.Continuation) {
        // A bounded buffer: a consumer that stops reading must not grow memory without end. When it overflows
        // the watch ends with .unavailable (see `yield`), and the consumer re-reads, as after any watch error.
        let (stream, continuation) = AsyncThrowingStream<GroupSnapshot, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(bufferLimit))
        continuation.onTermination = { _ in onCancel() }
        return (CoordinationWatch(stream), continuation)
    }

    /// Iterates the snapshots.
    public func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator()) }

    /// The watch's iterator.
    public struct Iterator: AsyncIteratorProtocol {
        /// Every way a watch ends other than cancellation.
        public typealias Failure = CoordinationError

        var base: AsyncThrowingStream<GroupSnapshot, any Error>.Iterator

        /// The next change; nil only after the consuming task was cancelled.
        /// - Throws: `CoordinationError` (`.unavailable`, `.revisionCompacted`, ...) when the watch ends.
        public mutating func next() async throws(CoordinationError) -> GroupSnapshot? {
            do {
                return try await base.next()
            } catch let error as CoordinationError {
                throw error
            } catch {
                throw CoordinationError(.unavailable, "the watch ended", cause: error)
            }
        }
    }
}

/// What feeds a `CoordinationWatch`.
typealias WatchContinuation = AsyncThrowingStream<GroupSnapshot, any Error>.Continuation

extension AsyncThrowingStream.Continuation where Element == GroupSnapshot, Failure == any Error {
    /// Yields a snapshot, or ends the watch with `.unavailable` when the consumer fell too far behind.
    func deliver(_ snapshot: GroupSnapshot) {
        if case .dropped = yield(snapshot) {
            finish(throwing: CoordinationError(.unavailable, "the watch's consumer fell behind; read and watch again"))
        }
    }
}
