import Coordination
import DurableLog
import LogFormat
import NIOPosix
import Synchronization
import Testing
import WALSimulation
@testable import Replication

/// The sessions over real sockets (loopback TCP through SwiftNIO): the same promises as over the in-memory
/// network.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ReplicationOverTCPTests {
    @Test func threeReplicasOverLoopbackConfirmOnlyWhatBothFollowersHoldAndEndByteIdentical() async throws {
        let dir = TemporaryDirectory()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let nodes = ["alpha", "beta", "gamma"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try TestLeader(node: nodes[0], epoch: 1, inSync: [nodes[1].identity, nodes[2].identity])
        let listener = try await ReplicationListener.bind(host: "127.0.0.1", port: 0, group: group) { connection in
            let session = leader.session(send: connection.send)
            connection.deliver { message in if let message { session.receive(message) } }
        }
        var followers: [(FollowerSession, ReplicationConnection)] = []
        for node in nodes.dropFirst() {
            let connection = try await ReplicationDialer.connect(host: "127.0.0.1", port: listener.port, group: group)
            let session = try followerSession(node, of: leader, send: connection.send)
            connection.deliver { message in if let message { session.receive(message) } }
            session.start()
            followers.append((session, connection))
        }
        let sessions = followers.map(\.0)
        let early = await withTaskGroup(of: Int.self) { tasks in
            for s in 0..<6 {
                tasks.addTask {
                    var early = 0
                    for i in 0..<60 {
                        guard let lsn = try? await leader.log.append(record(s, i)) else { continue }
                        if sessions.contains(where: { $0.log.durableLSN < lsn }) { early += 1 }
                    }
                    return early
                }
            }
            return await tasks.reduce(0, +)
        }
        #expect(early == 0)
        #expect(leader.log.committedLSN == LSN(360))
        for (session, connection) in followers {
            #expect(session.log.durableLSN == LSN(360))
            connection.close()
            try session.log.close()
        }
        try await listener.close()
        try leader.log.close()
        try await group.shutdownGracefully()
        for node in nodes.dropFirst() {
            #expect(replicaSegmentsDiffer(leader: nodes[0].directory, follower: node.directory) == nil)
        }
    }
}
