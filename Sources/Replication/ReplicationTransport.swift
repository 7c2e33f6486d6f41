import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// One replication connection over TCP (SwiftNIO): messages out with `send`, messages in handed, in order, to
/// the handler installed with `deliver(to:)` on a serial queue of the connection's own, never on an event
/// loop (a session blocks for cuts, syncs and segment reads). A connection that breaks, or that receives bytes
/// that are not a well-formed message, is closed; the handler then gets `nil`.
package final class ReplicationConnection: Sendable {
    private let channel: any Channel
    private let inbox: Inbox
    /// Whether a flush is queued on the event loop behind the writes (touched only on the loop, so relaxed).
    private let flushQueued = Atomic(false)

    fileprivate init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Sends `message` (queued on the channel; a closed connection drops it). Messages sent close together
    /// leave in one flush, one `writev`: a write queues one flush behind it unless one is queued already,
    /// and the loop runs tasks in order, so that flush goes after every write queued before it.
    package func send(_ message: ReplicationMessage) {
        let channel = self.channel
        channel.eventLoop.execute { [self] in
            channel.write(message, promise: nil)
            guard !flushQueued.load(ordering: .relaxed) else { return }
            flushQueued.store(true, ordering: .relaxed)
            channel.eventLoop.execute { [self] in
                flushQueued.store(false, ordering: .relaxed)
                channel.flush()
            }
        }
    }

    /// Sends `message` and blocks the calling thread until it is written to the socket (false: the connection
    /// failed or closed first). For a sender of many large messages (a snapshot's parts): each leaves at the
    /// pace the connection drains, so at most one waits in this process's buffers. Ordered with `send`: both
    /// go through the event loop's queue. Never call it on an event loop.
    package func sendAndWait(_ message: ReplicationMessage) -> Bool {
        precondition(!channel.eventLoop.inEventLoop, "sendAndWait blocks: never on an event loop")
        do {
            try channel.writeAndFlush(message).wait()
            return true
        } catch {
            return false
        }
    }

    /// Hands every message received to `handler`, in order, then `nil` once the connection ended. Messages that
    /// arrived before this call are handed over first.
    package func deliver(to handler: @escaping @Sendable (ReplicationMessage?) -> Void) { inbox.install(handler) }

    /// Closes the connection.
    package func close() { channel.close(promise: nil) }

    /// Where the peer is, for logs.
    package var peer: String { channel.remoteAddress.map { "\($0)" } ?? "unknown" }
}

/// A leader's replication endpoint: accepts followers' connections on a TCP address.
package final class ReplicationListener: Sendable {
    private let channel: any Channel

    /// Listens on `host:port` (port 0: any free port; see `port`), calling `accept` for each connection.
    package static func bind(host: String, port: Int, group: any EventLoopGroup,
                             accept: @escaping @Sendable (ReplicationConnection) -> Void) async throws -> ReplicationListener {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let inbox = try install(on: channel)
                    accept(ReplicationConnection(channel: channel, inbox: inbox))
                }
            }
            .bind(host: host, port: port).get()
        return ReplicationListener(channel: channel)
    }

    private init(channel: any Channel) { self.channel = channel }

    /// The port it listens on.
    package var port: Int { channel.localAddress?.port ?? 0 }

    /// Stops listening (connections already accepted stay open).
    package func close() async throws { try await channel.close() }
}

/// A follower's way to its leader.
package enum ReplicationDialer {
    /// Connects to a leader's replication endpoint.
    package static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> ReplicationConnection {
        let holder = Mutex<Inbox?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let inbox = try install(on: channel)
                    holder.withLock { $0 = inbox }
                }
            }
            .connect(host: host, port: port).get()
        guard let inbox = holder.withLock({ $0 }) else { preconditionFailure("the channel initializer ran") }
        return ReplicationConnection(channel: channel, inbox: inbox)
    }
}

/// Sets up a channel's pipeline: the message codec and the hand-off to the connection's queue.
private func install(on channel: any Channel) throws -> Inbox {
    let inbox = Inbox()
    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MessageDecoder()))
    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MessageEncoder()))
    try channel.pipeline.syncOperations.addHandler(InboundHandler(inbox: inbox))
    return inbox
}

/// Messages received, waiting for their handler, which runs on the connection's own serial queue.
private final class Inbox: Sendable {
    private struct State {
        var handler: (@Sendable (ReplicationMessage?) -> Void)?
        var waiting: [ReplicationMessage?] = []
        /// A hand-over of `waiting` is queued or running: messages arriving meanwhile join it (one queue
        /// hop per burst, not per message).
        var handing = false
    }

    private let queue = DispatchQueue(label: "replication-connection")
    private let state = Mutex(State())

    func install(_ handler: @escaping @Sendable (ReplicationMessage?) -> Void) {
        let start = state.withLock { s -> Bool in
            s.handler = handler
            guard !s.handing else { return false }
            s.handing = true
            return true
        }
        if start { queue.async { self.handOver(handler) } }
    }

    /// A message arrived (nil: the connection ended).
    func arrived(_ message: ReplicationMessage?) {
        let start = state.withLock { s -> (@Sendable (ReplicationMessage?) -> Void)? in
            s.waiting.append(message)
            guard let handler = s.handler, !s.handing else { return nil }
            s.handing = true
            return handler
        }
        if let start { queue.async { self.handOver(start) } }
    }

    /// On the queue: hands `handler` what waits, in order, until nothing does.
    private func handOver(_ handler: @Sendable (ReplicationMessage?) -> Void) {
        while true {
            let batch = state.withLock { s -> [ReplicationMessage?] in
                if s.waiting.isEmpty { s.handing = false }
                defer { s.waiting.removeAll(keepingCapacity: true) }
                return s.waiting
            }
            if batch.isEmpty { return }
            for message in batch { handler(message) }
        }
    }
}

private struct MessageDecoder: ByteToMessageDecoder {
    typealias InboundOut = ReplicationMessage

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let (message, used) = try buffer.withUnsafeReadableBytes({ try ReplicationMessage.decode($0) }) else {
            return .needMoreData
        }
        buffer.moveReaderIndex(forwardBy: used)
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }
}

private struct MessageEncoder: MessageToByteEncoder {
    typealias OutboundIn = ReplicationMessage

    func encode(data: ReplicationMessage, out: inout ByteBuffer) throws {
        out.writeBytes(data.encoded)
    }
}

private final class InboundHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ReplicationMessage
    private let inbox: Inbox

    init(inbox: Inbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.arrived(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.arrived(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed message (or a broken socket): never guess at the rest of the stream.
        context.close(promise: nil)
    }
}
