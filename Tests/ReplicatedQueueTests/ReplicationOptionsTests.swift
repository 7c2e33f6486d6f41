import Coordination
import DurableQueue
import Foundation
import Testing
@testable import ReplicatedQueue

/// Options that cannot make a group are refused by `start` with `.invalidArgument`, before anything is created.
@Suite struct ReplicationOptionsTests {
    private static let a = Endpoint(host: "127.0.0.1", port: 7101)
    private static let b = Endpoint(host: "127.0.0.1", port: 7102)
    private static let c = Endpoint(host: "127.0.0.1", port: 7103)

    /// What `start` throws for `options` (nil: it did not refuse them), and whether it created the directory.
    private func refusal(_ options: ReplicationOptions) async -> (error: QueueError?, created: Bool) {
        let directory = NSTemporaryDirectory() + "options-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let store = try await ReplicatedQueueStore.start(directory: directory, replication: options,
                                                             coordinator: InMemoryCoordinator(clock: ManualClock()))
            await store.shutdown()
            return (nil, true)
        } catch {
            return (error, FileManager.default.fileExists(atPath: directory))
        }
    }

    private func expectRefused(_ options: ReplicationOptions, mentioning words: String) async {
        let (error, created) = await refusal(options)
        #expect(error?.code == .invalidArgument, "\(String(describing: error))")
        #expect(error?.message.contains(words) == true, "\(String(describing: error?.message))")
        #expect(!created, "a refused start created the store's directory")
    }

    @Test func aMemberNamedAmongItsOwnPeersIsRefused() async {
        await expectRefused(ReplicationOptions(member: "a", listen: Self.a, peers: ["a": Self.b, "c": Self.c]),
                            mentioning: "named among its own peers")
    }

    @Test func twoMembersAtOneEndpointAreRefused() async {
        await expectRefused(ReplicationOptions(member: "a", listen: Self.a, peers: ["b": Self.b, "c": Self.b]),
                            mentioning: "'b' and 'c' are both at 127.0.0.1:7102")
        await expectRefused(ReplicationOptions(member: "a", listen: Self.b, peers: ["b": Self.b, "c": Self.c]),
                            mentioning: "where its peer 'b' is")
    }

    @Test func aGroupWithoutPeersIsRefused() async {
        await expectRefused(ReplicationOptions(member: "a", listen: Self.a, peers: [:]), mentioning: "no peers")
    }

    @Test func minInsyncReplicasOutsideTwoThroughTheGroupsSizeIsRefused() async {
        for count in [0, 1, 4] {
            var options = ReplicationOptions(member: "a", listen: Self.a, peers: ["b": Self.b, "c": Self.c])
            options.minInsyncReplicas = count
            #expect(options.replicationFactor == 3)
            await expectRefused(options, mentioning: "minInsyncReplicas is \(count); it must be 2 through the group's size, 3")
        }
    }

    @Test func durationsThatAreNotPositiveAreRefused() async {
        var options = ReplicationOptions(member: "a", listen: Self.a, peers: ["b": Self.b])
        options.leaseTTL = .zero
        await expectRefused(options, mentioning: "leaseTTL")
        options.leaseTTL = .seconds(2)
        options.tick = .milliseconds(-1)
        await expectRefused(options, mentioning: "tick")
    }

    /// An etcd nobody answers at (connection refused) is a clear error from `start`, not a node left
    /// retrying in the background.
    @Test func anUnreachableEtcdIsAnErrorFromStart() async throws {
        let etcd = try EtcdCoordinator(endpoints: ["http://127.0.0.1:\(try freePort())"], groupPrefix: "/nobody/")
        let directory = NSTemporaryDirectory() + "options-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let options = ReplicationOptions(member: "a", listen: Endpoint(host: "127.0.0.1", port: try freePort()),
                                         peers: ["b": Self.b])
        let refused = await #expect(throws: QueueError.self) {
            let store = try await ReplicatedQueueStore.start(directory: directory, replication: options, coordinator: etcd)
            await store.shutdown()
        }
        #expect(refused?.code == .invalidStore)
        #expect(refused?.message.contains("unavailable") == true, "\(String(describing: refused))")
        try await etcd.shutdown()
    }

    @Test func aPeerWithoutAPortIsRefused() async {
        await expectRefused(ReplicationOptions(member: "a", listen: Self.a, peers: ["b": Endpoint(host: "127.0.0.1", port: 0)]),
                            mentioning: "peer 'b' has port 0")
    }
}
