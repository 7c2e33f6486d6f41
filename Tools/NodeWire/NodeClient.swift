import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

/// What became of one request sent to a node. The difference between the two failures is the one a client's
/// history needs: `unreachable` sent nothing (the write did not happen), `noAnswer` sent the request and heard
/// nothing back (the write may have happened: indeterminate).
public enum NodeCallOutcome: Sendable, Equatable {
    case reply(NodeReply)
    /// No connection: the request was never sent.
    case unreachable(String)
    /// Sent, but the connection ended or the deadline passed before a reply.
    case noAnswer(String)
}

/// A client of `queue-node`: one connection per request, so that a node killed or stopped mid-request costs
/// one call, never a stuck session.
public enum NodeClient {
    /// Sends `request` to the node at `host:port` and waits at most `timeout` for its reply.
    public static func call(_ request: NodeRequest, host: String = "127.0.0.1", port: Int,
                            timeout: Duration) async -> NodeCallOutcome {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do { channel = try await connect(host: host, port: port) } catch { return .unreachable("\(error)") }
        return await withTaskGroup(of: NodeCallOutcome?.self) { group in
            group.addTask {
                do {
                    return try await channel.executeThenClose { inbound, outbound in
                        try await outbound.write(ByteBuffer(bytes: NodeLine.encode(request)))
                        for try await line in inbound {
                            do {
                                return .reply(try NodeLine.decode(NodeReply.self, from: line.readableBytesView))
                            } catch {
                                return .noAnswer("an unreadable reply: \(error)")
                            }
                        }
                        return .noAnswer("the node closed the connection")
                    }
                } catch {
                    return .noAnswer("\(error)")
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            // The deadline passed first: closing the channel ends the reading task.
            if first == nil { channel.channel.close(promise: nil) }
            group.cancelAll()
            return first ?? .noAnswer("no reply within \(timeout)")
        }
    }

    /// A `consume` session with the node at `host:port`: `onReply` sees each line the node sends and answers
    /// with the requests to send back (the acks it wants), or nil to end the session. Returns why the session
    /// ended; it ends at the latest when `quiet` passes without a line from the node.
    public static func session(_ request: NodeRequest, host: String = "127.0.0.1", port: Int, quiet: Duration,
                               onReply: @escaping @Sendable (NodeReply) -> [NodeRequest]?) async -> String {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do { channel = try await connect(host: host, port: port) } catch { return "unreachable: \(error)" }
        let lastLine = LastLine()
        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    return try await channel.executeThenClose { inbound, outbound in
                        try await outbound.write(ByteBuffer(bytes: NodeLine.encode(request)))
                        for try await line in inbound {
                            lastLine.time.withLock { $0 = .now }
                            let reply: NodeReply
                            do { reply = try NodeLine.decode(NodeReply.self, from: line.readableBytesView) } catch {
                                return "an unreadable line: \(error)"
                            }
                            guard let answers = onReply(reply) else { return "ended by the client" }
                            for answer in answers { try await outbound.write(ByteBuffer(bytes: NodeLine.encode(answer))) }
                        }
                        return "the node closed the connection"
                    }
                } catch {
                    return "\(error)"
                }
            }
            group.addTask {
                while lastLine.time.withLock({ ContinuousClock.now - $0 < quiet }) {
                    try? await Task.sleep(for: .milliseconds(50))
                    if Task.isCancelled { return "" }
                }
                return nil
            }
            let first = await group.next() ?? nil
            // Quiet for too long: closing the channel ends the reading task.
            if first == nil { channel.channel.close(promise: nil) }
            group.cancelAll()
            return first ?? "no line from the node within \(quiet)"
        }
    }

    /// A connection to the node at `host:port` that reads lines.
    private static func connect(host: String, port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(500))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }
}

/// When a session last heard from its node.
private final class LastLine: Sendable {
    let time = Mutex(ContinuousClock.now)
}
