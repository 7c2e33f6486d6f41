import NIOCore
import NIOExtras
import NIOPosix

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
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(500))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            return .unreachable("\(error)")
        }
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
}
