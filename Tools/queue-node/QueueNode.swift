import ArgumentParser
import Coordination
import Dispatch
import DurableQueue
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import NodeWire
import ReplicatedQueue

/// One replica of a replicated store as a process of its own, so that the chaos campaign can kill it with
/// `-9`, stop it with SIGSTOP and wipe its disk. It serves test clients `NodeRequest`s (JSON lines) on its
/// client address and logs to stderr; SIGTERM leaves the group cleanly.
@main
struct QueueNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-node",
        abstract: "Run one replica of a replicated durable queue store, serving test clients.",
        discussion: """
            The configuration file (JSON) names the member, its directory, its replication and client \
            addresses, its peers' replication addresses, etcd's endpoints and the group's key prefix; see \
            NodeConfiguration.swift. Prints "ready <member> client=<port> replication=<port>" on stdout once \
            it has joined its group.

            Example: queue-node --config /etc/queue/a.json
            """)

    @Option(help: "The node's configuration file (JSON).") var config: String

    func run() async throws {
        let configuration: NodeConfiguration
        let replication: ReplicationOptions
        do {
            configuration = try NodeConfiguration.load(config)
            replication = try configuration.replicationOptions
        } catch {
            throw ValidationError("the configuration \(config) cannot be used: \(error)")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let coordinator = try EtcdCoordinator(endpoints: configuration.etcd, groupPrefix: configuration.group,
                                              requestTimeout: .seconds(2))
        var options = StoreOptions()
        options.logger = Logger(label: "queue-node")
        let store = try await ReplicatedQueueStore.start(directory: configuration.directory, options: options,
                                                         replication: replication, coordinator: coordinator)
        let client = try NodeConfiguration.endpoint(configuration.client)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: client.host, port: client.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let ready = "ready \(configuration.member) client=\(server.channel.localAddress?.port ?? 0) replication=\(store.listenPort)\n"
        FileHandle.standardOutput.write(Data(ready.utf8))

        let terminated = Self.terminationSignal()
        let service = NodeService(store: store)
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { clients in
                        for try await connection in connections {
                            clients.addTask { await Self.serve(connection, service: service) }
                        }
                    }
                }
            }
            await terminated()
            server.channel.close(promise: nil)
        }
        await store.shutdown()
        try? await coordinator.shutdown()
    }

    /// Answers one connection's requests in order, until the client closes it. A `consume` request takes the
    /// rest of the connection: its session reads the client's acks from it.
    static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, service: NodeService) async {
        try? await connection.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            while let line = try await lines.next() {
                let request: NodeRequest
                do {
                    request = try NodeLine.decode(NodeRequest.self, from: line.readableBytesView)
                } catch {
                    let reply = NodeReply.failed(code: "invalidArgument", message: "an unreadable request: \(error)", leaderHint: nil)
                    try await outbound.write(ByteBuffer(bytes: NodeLine.encode(reply)))
                    continue
                }
                if case .consume(let queue, let idle) = request {
                    let session = ConsumeSession(store: service.store, queue: queue, idle: .milliseconds(idle))
                    try await session.run(lines: &lines) { reply in
                        try await outbound.write(ByteBuffer(bytes: NodeLine.encode(reply)))
                    }
                    return
                }
                try await outbound.write(ByteBuffer(bytes: NodeLine.encode(await service.handle(request))))
            }
        }
    }

    /// Returns a function that waits for SIGTERM or SIGINT.
    static func terminationSignal() -> @Sendable () async -> Void {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let sources = [SIGTERM, SIGINT].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber)
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        // Dispatch sources are not Sendable; these are only cancelled, once, after the signal.
        nonisolated(unsafe) let installed = sources
        return {
            for await _ in stream { break }
            for source in installed { source.cancel() }
        }
    }
}
