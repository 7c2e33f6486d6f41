import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback in front of one port: a member's replication endpoint (its peers dial the proxy)
/// or etcd (one member's coordinator dials its own proxy). `cut()` closes every connection through it and
/// refuses new ones until `heal()`: a link down in one place, the rest of the network up.
final class FaultProxy: Sendable {
    let port: Int
    private let listener: any Channel
    private let links: Links

    private final class Links: Sendable {
        let state = Mutex<(cut: Bool, open: [ObjectIdentifier: any Channel])>((false, [:]))

        var isCut: Bool { state.withLock { $0.cut } }

        /// Tracks `channel` until it closes; false (and nothing tracked) when the link is cut.
        func track(_ channel: any Channel) -> Bool {
            let accepted = state.withLock { s in
                guard !s.cut else { return false }
                s.open[ObjectIdentifier(channel)] = channel
                return true
            }
            if accepted {
                channel.closeFuture.whenComplete { [self] _ in
                    _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
                }
            }
            return accepted
        }
    }

    private init(port: Int, listener: any Channel, links: Links) {
        self.port = port
        self.listener = listener
        self.links = links
    }

    /// A proxy on a free loopback port, forwarding to `127.0.0.1:target`.
    static func start(forwardingTo target: Int) async throws -> FaultProxy {
        let links = Links()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { inbound in
                guard links.track(inbound) else { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { outbound in
                        guard links.track(outbound) else { return outbound.close() }
                        return outbound.eventLoop.makeCompletedFuture {
                            try outbound.pipeline.syncOperations.addHandler(Relay(partner: inbound))
                        }.flatMap {
                            inbound.eventLoop.submit {
                                try inbound.pipeline.syncOperations.addHandler(Relay(partner: outbound))
                            }
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FaultProxy(port: listener.localAddress?.port ?? 0, listener: listener, links: links)
    }

    /// Closes every connection through the proxy and refuses new ones.
    func cut() {
        let open = links.state.withLock { s in
            s.cut = true
            return Array(s.open.values)
        }
        for channel in open { channel.close(promise: nil) }
    }

    /// Lets connections through again.
    func heal() { links.state.withLock { $0.cut = false } }

    func close() async { try? await listener.close() }
}

/// Copies what one side of a proxied connection reads to the other side, and closes the other side when
/// this one closes. No backpressure: the campaign's traffic is small.
private final class Relay: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let partner: any Channel

    init(partner: any Channel) { self.partner = partner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
