import DurableQueue
import NIOCore
import NodeWire
import ReplicatedQueue
import Synchronization

/// A consumer on the leader whose acks a test client gives, one delivery at a time: the node sends a
/// delivery, the client records it and asks for its ack, the node acks it and says when the ack is confirmed.
/// The client has seen every message the store takes off the queue, so that a campaign can check that a
/// message whose ack was confirmed is never delivered again, and that every other one comes back.
struct ConsumeSession {
    let store: ReplicatedQueueStore
    let queue: String
    let idle: Duration

    /// Runs until the client closes the connection, no delivery comes for `idle`, or the store fails (sent
    /// as `.failed`). Deliveries not acked go back to the queue when the consumer is cancelled.
    func run(lines: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
             send: (NodeReply) async throws -> Void) async throws {
        let consumer: Consumer
        do throws(QueueError) {
            consumer = try await store.leaderStore().consume(queue: queue, prefetch: 1)
        } catch {
            try await send(.failed(code: "\(error.code)", message: error.message, leaderHint: error.leaderHint))
            return
        }
        defer { consumer.cancel() }
        // The deliveries come through a stream fed by one task, so that a quiet spell can end the wait
        // (an empty queue does not end a consumer's iteration).
        let (deliveries, feed) = AsyncStream.makeStream(of: Result<Delivery, QueueError>.self)
        let reader = Task {
            do {
                for try await delivery in consumer.deliveries { feed.yield(.success(delivery)) }
            } catch let error as QueueError {
                feed.yield(.failure(error))
            } catch {
                feed.yield(.failure(QueueError(.cancelled, "\(error)")))
            }
            feed.finish()
        }
        defer { reader.cancel() }
        let lastDelivery = Mutex(ContinuousClock.now)
        let watchdog = Task { [idle] in
            while !Task.isCancelled, lastDelivery.withLock({ ContinuousClock.now - $0 < idle }) {
                try? await Task.sleep(for: .milliseconds(20))
            }
            feed.finish()
        }
        defer { watchdog.cancel() }
        for await next in deliveries {
            let delivery: Delivery
            switch next {
            case .success(let d): delivery = d
            case .failure(let error):
                if error.code != .cancelled {
                    try await send(.failed(code: "\(error.code)", message: error.message, leaderHint: error.leaderHint))
                }
                return
            }
            let id = delivery.messageID.rawValue
            try await send(.delivered(id: id, body: String(decoding: delivery.message.body, as: UTF8.self),
                                      tag: delivery.tag.rawValue))
            // The client's ack of it, or the end of the session.
            guard let line = try await lines.next() else { return }
            guard case .ack(let tag)? = try? NodeLine.decode(NodeRequest.self, from: line.readableBytesView),
                  tag == delivery.tag.rawValue else {
                try await send(.failed(code: "invalidArgument", message: "expected the ack of tag \(delivery.tag.rawValue)",
                                       leaderHint: nil))
                return
            }
            do throws(QueueError) {
                try await consumer.ack(delivery.tag)
            } catch {
                try await send(.failed(code: "\(error.code)", message: error.message, leaderHint: error.leaderHint))
                return
            }
            try await send(.acked(id: id))
            lastDelivery.withLock { $0 = .now }
        }
    }
}
