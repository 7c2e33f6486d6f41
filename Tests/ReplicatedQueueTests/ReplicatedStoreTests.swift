import Coordination
import DurableLog
import DurableQueue
import Foundation
import Glibc
import Logging
import MetricsTestKit
import Synchronization
import Testing
@testable import ReplicatedQueue

/// Three stores of one group, each its own directory and endpoint (loopback TCP), electing through the in-memory
/// coordinator.
final class StoreGroup: Sendable {
    let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("replicated-\(UUID().uuidString)").path
    let coordinator = InMemoryCoordinator(clock: ManualClock())
    let endpoints: [String: Endpoint]
    let stores = Mutex<[String: ReplicatedQueueStore]>([:])

    init(_ members: [String]) throws {
        endpoints = Dictionary(uniqueKeysWithValues: try members.map { ($0, Endpoint(host: "127.0.0.1", port: try freePort())) })
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func start(_ member: String, minInsyncReplicas: Int = 2, inSyncLagTime: Duration = .milliseconds(300),
               leaseTTL: Duration = .seconds(30), confirmTimeout: Duration = .seconds(60),
               clock: (any StoreClock)? = nil, smallSegments: Bool = false, metrics: TestMetrics? = nil) async throws {
        var replication = ReplicationOptions(member: member, listen: endpoints[member]!,
                                             peers: endpoints.filter { $0.key != member })
        replication.minInsyncReplicas = minInsyncReplicas
        replication.tick = .milliseconds(10)
        // Real time: long enough that a loaded machine's scheduling does not make a leader step down mid-test
        // (see ReplicaNodeTests); leases expire only by the coordinator's manual clock, which no test advances.
        replication.leaseTTL = leaseTTL
        replication.inSyncLagTime = inSyncLagTime
        replication.confirmTimeout = confirmTimeout
        var options = StoreOptions()
        options.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        options.metricsFactory = metrics
        if let clock { options.clock = clock }
        if smallSegments {
            // Segments of 64 KiB, so that a few hundred messages fill several and a checkpoint deletes some.
            options.log.segmentBytes = 64 << 10
            options.log.frameBytesMax = 8 << 10
            options.log.recordBytesMax = (8 << 10) - 4
            options.log.pendingBytesMax = 64 << 10
        }
        let store = try await ReplicatedQueueStore.start(directory: "\(root)/\(member)", options: options,
                                                         replication: replication, coordinator: coordinator)
        stores.withLock { $0[member] = store }
    }

    func stop(_ member: String) async {
        guard let store = stores.withLock({ $0.removeValue(forKey: member) }) else { return }
        await store.shutdown()
    }

    func store(_ member: String) -> ReplicatedQueueStore { stores.withLock { $0[member]! } }

    /// The leader once its in-sync set holds `count` members (every node's view agreeing that it leads).
    func leader(inSync count: Int) async throws -> String {
        try await eventually { [self] in
            guard let state = try? await coordinator.read().state, state.inSync.count == count,
                  let leader = state.leader?.member, stores.withLock({ $0[leader] })?.role == .leader(epoch: state.epoch)
            else { return nil }
            return leader
        }
    }

    func shutdown() async {
        for member in stores.withLock({ Array($0.keys) }) { await stop(member) }
        try? FileManager.default.removeItem(atPath: root)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

/// A port free on loopback now (the kernel's pick for port 0).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
        }
    }
    guard bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `value` until it gives one (waits on the nodes' own threads and timers), failing after `seconds`.
func eventually<T: Sendable>(seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation,
                             _ value: @Sendable () async -> T?) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while true {
        if let found = await value() { return found }
        guard ContinuousClock.now < deadline else {
            throw QueueError(.closed, "the condition at \(sourceLocation.fileName):\(sourceLocation.line) did not come true in \(seconds) s")
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

func body(_ i: Int) -> [UInt8] { Array("message \(i)".utf8) }

@Suite(.serialized, .timeLimit(.minutes(5))) struct ReplicatedStoreTests {
    @Test func confirmedMessagesSurviveTheLeaderAndItsConsumerEndsWithNotLeader() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let first = try await group.leader(inSync: 3)
        let store = try await group.store(first).leaderStore()
        try await store.declareQueue("orders")
        var ids: [MessageID] = []
        for i in 0..<50 { ids.append(try await store.publish(to: "orders", Message(body: body(i)))) }

        // A follower serves nothing and names the leader.
        for member in ["alpha", "beta", "gamma"] where member != first {
            let error = await #expect(throws: QueueError.self) { try await group.store(member).leaderStore() }
            #expect(error?.code == .notLeader)
            #expect(error?.leaderHint == first)
            #expect(group.store(member).role == .follower(leader: first, epoch: try #require(try await group.coordinator.read().state).epoch))
        }

        // A consumer takes ten messages and acks five; then the leader goes.
        let consumer = try store.consume(queue: "orders", prefetch: 10)
        var iterator = consumer.deliveries.makeAsyncIterator()
        var taken: [Delivery] = []
        for _ in 0..<10 { taken.append(try #require(try await iterator.next())) }
        for delivery in taken.prefix(5) { try await consumer.ack(delivery.tag) }
        // The followers keep their copies of the state up to what was committed.
        let last = try #require(ids.last).rawValue
        for member in ["alpha", "beta", "gamma"] where member != first {
            _ = try await eventually { group.store(member).followerAppliedLSN.rawValue >= last ? true : nil }
        }
        await group.stop(first)
        let ended = await #expect(throws: QueueError.self) { while try await iterator.next() != nil {} }
        #expect(ended?.code == .notLeader)
        let later = await #expect(throws: QueueError.self) { try await store.publish(to: "orders", Message(body: [1])) }
        #expect(later?.code == .notLeader)

        // Another in-sync replica leads, with every confirmed message: the 45 not acked, the 5 taken but not
        // acked marked redelivered.
        let second = try await group.leader(inSync: 2)
        #expect(second != first)
        let next = try await group.store(second).leaderStore()
        // Warm: it started from its copy, replaying only the few records after the last publish (checkouts and
        // acks), not the 50 publishes before them.
        #expect(next.openReport.replayedRecords < 30, "\(next.openReport)")
        let resumed = try next.consume(queue: "orders", prefetch: 100)
        var received: [Int: Bool] = [:]
        for try await delivery in resumed.deliveries {
            let text = String(decoding: delivery.message.body, as: UTF8.self)
            let i = try #require(Int(text.dropFirst("message ".count)))
            #expect(received[i] == nil, "message \(i) delivered twice")
            received[i] = delivery.redelivered
            try await resumed.ack(delivery.tag)
            if received.count == 45 { break }
        }
        #expect(Set(received.keys) == Set(5..<50))
        // The five acks made room in the prefetch window: up to five more were checked out before the leader went.
        let redelivered = Set(received.filter(\.value).keys)
        #expect(redelivered.isSuperset(of: 5..<10) && redelivered.isSubset(of: 5..<15), "\(redelivered.sorted())")
        #expect(next.queueInfo("orders")?.ready == 0)
        await group.shutdown()
    }

    /// A follower's disk is wiped while the leader takes messages, acks most and deletes the segments its
    /// checkpoint covers. The replica comes back empty, behind the leader's first segment: it installs the
    /// leader's checkpoint, takes the frames from there and joins the in-sync set. Then the third member goes
    /// (and leaves the set), then the leader: the wiped replica is the only one that may lead, and it serves
    /// every message not acked once the third is back.
    @Test func aWipedReplicaCatchesUpFromTheLeadersCheckpointAndLeadsWithEveryMessage() async throws {
        let members = ["alpha", "beta", "gamma"]
        let group = try StoreGroup(members)
        for member in members { try await group.start(member, smallSegments: true) }
        let first = try await group.leader(inSync: 3)
        let wiped = try #require(members.first { $0 != first })
        let other = try #require(members.first { $0 != first && $0 != wiped })
        await group.stop(wiped)
        try FileManager.default.removeItem(atPath: "\(group.root)/\(wiped)")

        let store = try await group.store(first).leaderStore()
        try await store.declareQueue("orders")
        func payload(_ i: Int) -> [UInt8] { body(i) + [UInt8](repeating: UInt8(i % 251), count: 1_000) }
        var ids: [MessageID] = []
        for i in 0..<300 { ids.append(try await store.publish(to: "orders", Message(body: payload(i)))) }
        let consumer = try store.consume(queue: "orders", prefetch: 20)
        var iterator = consumer.deliveries.makeAsyncIterator()
        for _ in 0..<280 {
            let delivery = try #require(try await iterator.next())
            try await consumer.ack(delivery.tag)
        }
        try await store.reclaim()
        #expect(store.diskUsage.firstLSN.rawValue > ids[100].rawValue, "the leader deleted the segments of acked messages")

        try await group.start(wiped, smallSegments: true)
        let last = try #require(ids.last).rawValue
        _ = try await eventually { () async -> Bool? in
            guard let state = try? await group.coordinator.read().state, state.inSync.count == 3,
                  group.store(wiped).followerAppliedLSN.rawValue >= last else { return nil }
            return true
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: "\(group.root)/\(wiped)/wal").filter { $0.hasSuffix(".wal") }
        #expect(!segments.contains("00000000000000000001.wal"), "it started at the leader's first segment: \(segments.sorted())")

        await group.stop(other)
        _ = try await eventually { () async -> Bool? in
            guard let state = try? await group.coordinator.read().state, state.inSync.count == 2 else { return nil }
            return true
        }
        await group.stop(first)
        try await group.start(other, smallSegments: true)
        #expect(try await group.leader(inSync: 2) == wiped)
        let resumed = try await group.store(wiped).leaderStore().consume(queue: "orders", prefetch: 100)
        var received: Set<Int> = []
        for try await delivery in resumed.deliveries {
            let i = try #require(ids.firstIndex(of: delivery.messageID))
            #expect(delivery.message.body == payload(i))
            #expect(received.insert(i).inserted, "message \(i) delivered twice")
            if received.count == 20 { break }
        }
        #expect(received == Set(280..<300))
        await group.shutdown()
    }

    @Test func aLeaderWithoutEnoughInSyncReplicasRefusesWritesAndWritesNothing() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let leader = try await group.leader(inSync: 3)
        // The leader tells the set it recorded with the coordinator; a follower tells none.
        let replicas = Set(["alpha", "beta", "gamma"].compactMap { group.store($0).replica })
        #expect(replicas.map(\.member).sorted() == ["alpha", "beta", "gamma"])
        _ = try await eventually { group.store(leader).inSyncReplicas.map(Set.init) == replicas ? true : nil }
        for member in ["alpha", "beta", "gamma"] where member != leader { #expect(group.store(member).inSyncReplicas == nil) }
        let store = try await group.store(leader).leaderStore()
        try await store.declareQueue("orders")
        _ = try await store.publish(to: "orders", Message(body: body(0)))
        for member in ["alpha", "beta", "gamma"] where member != leader { await group.stop(member) }
        // Once both followers left the in-sync set, the leader alone is below minInsyncReplicas 2.
        _ = try await group.leader(inSync: 1)
        _ = try await eventually { group.store(leader).inSyncReplicas?.map(\.member) == [leader] ? true : nil }
        let before = store.logCounters
        let outcome = Mutex<Result<MessageID, QueueError>?>(nil)
        let publish = Task {
            let result: Result<MessageID, QueueError>
            do throws(QueueError) { result = .success(try await store.publish(to: "orders", Message(body: body(1)))) } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
        }
        // Refused at once; a store that appended it instead would wait for replicas that are gone (then the
        // group's shutdown ends that wait).
        let appendedOrAnswered = try await eventually { () -> Bool? in
            if store.logCounters.appends != before.appends { return true }
            return outcome.withLock { $0 } == nil ? nil : false
        }
        #expect(!appendedOrAnswered, "the write was appended with the in-sync set below minInsyncReplicas")
        if appendedOrAnswered {
            await group.shutdown()
            return
        }
        await publish.value
        guard case .failure(let refused) = try #require(outcome.withLock { $0 }) else {
            Issue.record("the write was confirmed")
            return
        }
        #expect(refused.code == .notEnoughReplicas)
        #expect(store.logCounters.appends == before.appends, "a refused write appended nothing")
        #expect(store.queueInfo("orders")?.ready == 1)
        let again = await #expect(throws: QueueError.self) { try await group.store(leader).leaderStore().declareQueue("more") }
        #expect(again?.code == .notEnoughReplicas)
        await group.shutdown()
    }

    @Test func theLeaderReportsItsInSyncSetAsMetricsAsItShrinksAndGrows() async throws {
        let members = ["alpha", "beta", "gamma"]
        let metrics = TestMetrics()
        let group = try StoreGroup(members)
        for member in members { try await group.start(member, metrics: metrics) }
        let leader = try await group.leader(inSync: 3)
        let d = [("member", leader)]
        @Sendable func gauge(_ label: String, _ member: String = leader) -> Double? {
            try? metrics.expectGauge(label, [("member", member)]).lastValue
        }
        func changes(_ change: String) -> Int64 {
            (try? metrics.expectCounter("replication_in_sync_changes_total", d + [("change", change)]).totalValue) ?? 0
        }
        _ = try await eventually { gauge("replication_in_sync_replicas") == 3 ? true : nil }
        #expect(gauge("replication_leader") == 1)
        #expect(try metrics.expectCounter("replication_terms_total", d).totalValue == 1)
        for member in members where member != leader { #expect(gauge("replication_leader", member) ?? 0 == 0) }
        // The founder was alone in sync, and every change since is counted: the set is the founder plus the
        // joins less the departures (a follower a loaded machine stalls may leave and join again meanwhile).
        #expect(changes("joined") >= 2 && 1 + changes("joined") - changes("left") == 3)

        let follower = members.first { $0 != leader }!
        let departures = changes("left"), joins = changes("joined")
        await group.stop(follower)
        _ = try await group.leader(inSync: 2)
        _ = try await eventually { gauge("replication_in_sync_replicas") == 2 ? true : nil }
        #expect(changes("left") > departures && 1 + changes("joined") - changes("left") == 2)
        try await group.start(follower, metrics: metrics)
        _ = try await group.leader(inSync: 3)
        _ = try await eventually { gauge("replication_in_sync_replicas") == 3 ? true : nil }
        #expect(changes("joined") > joins && 1 + changes("joined") - changes("left") == 3)
        await group.shutdown()
        #expect(gauge("replication_leader") == 0 && gauge("replication_in_sync_replicas") == 0)
    }

    @Test func consumersOnALeaderBelowMinInsyncReplicasWaitForTheSetAndTheStoreServesWhenItGrowsAgain() async throws {
        let members = ["alpha", "beta", "gamma"]
        let group = try StoreGroup(members)
        for member in members { try await group.start(member) }
        let leader = try await group.leader(inSync: 3)
        let store = try await group.store(leader).leaderStore()
        try await store.declareQueue("orders")
        for i in 0..<3 { _ = try await store.publish(to: "orders", Message(body: body(i))) }
        let first = try store.consume(queue: "orders", prefetch: 1)
        var firstDeliveries = first.deliveries.makeAsyncIterator()
        let taken = try #require(try await firstDeliveries.next())
        for member in members where member != leader { await group.stop(member) }
        _ = try await group.leader(inSync: 1)

        // An ack is a write the gate refuses, and the delivery stays out with its consumer, to ack later.
        let refused = await #expect(throws: QueueError.self) { try await first.ack(taken.tag) }
        #expect(refused?.code == .notEnoughReplicas)
        // A new consumer's checkout is no caller's write: it waits for the set to grow rather than stop the store
        // (it did: every later call, on every queue, failed with the refusal until the term ended).
        let second = try store.consume(queue: "orders", prefetch: 1)
        for member in members where member != leader {
            try await group.start(member)
        }
        _ = try await group.leader(inSync: 3)
        var secondDeliveries = second.deliveries.makeAsyncIterator()
        let next = try #require(try await secondDeliveries.next())
        #expect(next.messageID != taken.messageID)
        try await second.ack(next.tag)
        try await first.ack(taken.tag)
        _ = try await store.publish(to: "orders", Message(body: body(3)))
        first.cancel()
        second.cancel()
        // Four published, two acked: the other two are back in the queue once the consumers' returns commit.
        _ = try await eventually { store.queueInfo("orders")?.ready == 2 ? true : nil }
        await group.shutdown()
    }

    @Test func aPublishTheLeaderCouldNotConfirmIsIndeterminateAndTheProducersRetrySettlesItExactlyOnce() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        // The followers stay in the in-sync set after they go (a lag time longer than the test), so the
        // leader takes the publish and waits for acknowledgements that never come.
        for member in ["alpha", "beta", "gamma"] { try await group.start(member, inSyncLagTime: .seconds(600)) }
        let leader = try await group.leader(inSync: 3)
        let store = try await group.store(leader).leaderStore()
        try await store.declareQueue("orders")
        let producer = try await store.registerProducer(name: "checkout")
        _ = try await producer.publish(to: "orders", Message(body: body(1)), sequence: ProducerSequence(rawValue: 1))
        for member in ["alpha", "beta", "gamma"] where member != leader { await group.stop(member) }
        let appends = store.logCounters.appends
        let publish = Task { () async -> Result<IdempotentResult<MessageID>, QueueError> in
            do throws(QueueError) {
                return .success(try await producer.publish(to: "orders", Message(body: body(2)), sequence: ProducerSequence(rawValue: 2)))
            } catch { return .failure(error) }
        }
        _ = try await eventually { store.logCounters.appends > appends ? true : nil }
        await group.stop(leader)
        switch await publish.value {
        case .success(let result): Issue.record("confirmed (\(result)) with no follower to hold it")
        case .failure(let error): #expect(error.code == .indeterminate, "\(error)")
        }

        // The whole group comes back, whoever leads it now: the producer registers again and resends from its
        // last confirmed sequence. Sequence 2 is stored exactly once, whether the new leader held it or not.
        for member in ["alpha", "beta", "gamma"] { try await group.start(member, inSyncLagTime: .seconds(600)) }
        let next = try await group.store(try await group.leader(inSync: 3)).leaderStore()
        let resumed = try await next.registerProducer(name: "checkout")
        #expect(resumed.id == producer.id)
        _ = try await resumed.publish(to: "orders", Message(body: body(2)), sequence: ProducerSequence(rawValue: 2))
        _ = try await resumed.publish(to: "orders", Message(body: body(3)), sequence: ProducerSequence(rawValue: 3))
        #expect(next.queueInfo("orders")?.ready == 3)
        await group.shutdown()
    }

    @Test func aWriteTheGroupCannotCommitEndsIndeterminateAfterTheConfirmTimeoutAndCommitsWhenTheReplicaReturns() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        // The followers stay in the in-sync set after they go (a lag time longer than the test): the leader
        // takes writes and waits for an acknowledgement that does not come, and nothing else ends the wait.
        // The stores' clocks move only when the test says (their confirm timeout is 10 s of those clocks).
        let clocks = ["alpha": ManualStoreClock(), "beta": ManualStoreClock(), "gamma": ManualStoreClock()]
        for member in ["alpha", "beta", "gamma"] {
            try await group.start(member, inSyncLagTime: .seconds(600), confirmTimeout: .seconds(10), clock: clocks[member])
        }
        let leader = try await group.leader(inSync: 3)
        let followers = ["alpha", "beta", "gamma"].filter { $0 != leader }
        let store = try await group.store(leader).leaderStore()
        try await store.declareQueue("orders")
        _ = try await group.store(leader).publish(to: "orders", Message(body: body(0)))
        await group.stop(followers[1])

        // Made on the leader, and forwarded from the follower still running: each is appended, cannot commit,
        // and is answered once the leader's clock passes the timeout.
        for member in [leader, followers[0]] {
            let appends = store.logCounters.appends
            let outcome = Mutex<Result<MessageID, QueueError>?>(nil)
            let publish = Task { [node = group.store(member)] in
                let result: Result<MessageID, QueueError>
                do throws(QueueError) { result = .success(try await node.publish(to: "orders", Message(body: body(1)))) } catch {
                    result = .failure(error)
                }
                outcome.withLock { $0 = result }
            }
            _ = try await eventually { store.logCounters.appends > appends ? true : nil }
            #expect(outcome.withLock { $0 } == nil, "answered before the timeout")
            clocks[leader]!.advance(by: .seconds(10))
            let answered = try? await eventually(seconds: 30) { outcome.withLock { $0 } }
            guard let answered else {
                Issue.record("a write through \(member == leader ? "the leader" : "a follower") got no answer")
                publish.cancel()
                await group.shutdown()
                return
            }
            switch answered {
            case .success(let id): Issue.record("confirmed (\(id)) while an in-sync replica was gone")
            case .failure(let error): #expect(error.code == .indeterminate, "\(error)")
            }
        }
        #expect(store.queueInfo("orders")?.ready == 1, "nothing uncommitted is applied")

        // The replica returns: what the leader held commits, and its store applies it as it would have.
        try await group.start(followers[1], inSyncLagTime: .seconds(600), confirmTimeout: .seconds(10),
                              clock: clocks[followers[1]])
        _ = try await eventually { store.queueInfo("orders")?.ready == 3 ? true : nil }
        _ = try await group.store(followers[0]).publish(to: "orders", Message(body: body(2)))
        #expect(store.queueInfo("orders")?.ready == 4)
        await group.shutdown()
    }

    @Test func aTermWhoseStartNoReplicaAcknowledgesAnswersItsCallersWithinTheConfirmTimeout() async throws {
        let members = ["alpha", "beta", "gamma"]
        let group = try StoreGroup(members)
        // In-sync replicas that are gone stay in the set (a lag time longer than the test), so nothing refuses
        // the new term's writes and nothing but the confirm timeout ends the wait for its session start.
        let clocks = Dictionary(uniqueKeysWithValues: members.map { ($0, ManualStoreClock()) })
        for member in members {
            try await group.start(member, inSyncLagTime: .seconds(600), confirmTimeout: .seconds(10), clock: clocks[member])
        }
        let first = try await group.leader(inSync: 3)
        try await group.store(first).leaderStore().declareQueue("orders")
        for member in members { await group.stop(member) }

        // Alone, it leads again; its store waits for the others to acknowledge the term's start.
        try await group.start(first, inSyncLagTime: .seconds(600), confirmTimeout: .seconds(10), clock: clocks[first])
        let node = group.store(first)
        _ = try await eventually { if case .leader = node.role { true } else { nil } }
        for attempt in 0..<2 {
            let outcome = Mutex<Result<Void, QueueError>?>(nil)
            Task {
                let result: Result<Void, QueueError>
                do throws(QueueError) {
                    result = attempt == 0 ? .success(_ = try await node.leaderStore())
                        : .success(_ = try await node.publish(to: "orders", Message(body: body(1))))
                } catch {
                    result = .failure(error)
                }
                outcome.withLock { $0 = result }
            }
            // The clock moves until the wait ends (the caller's deadline is taken when it starts waiting).
            let answered = try await eventually(seconds: 30) { () -> Result<Void, QueueError>? in
                if let done = outcome.withLock({ $0 }) { return done }
                clocks[first]!.advance(by: .seconds(5))
                return nil
            }
            switch answered {
            case .success: Issue.record("the term started with no replica acknowledging it")
            case .failure(let error): #expect(error.code == .notEnoughReplicas, "\(error)")
            }
        }

        // The replicas return (all of the in-sync set must acknowledge): the term starts, and serves what the
        // group confirmed before.
        for member in members where member != first {
            try await group.start(member, inSyncLagTime: .seconds(600), confirmTimeout: .seconds(10))
        }
        let store = try await eventually { try? await node.leaderStore() }
        #expect(store.queueInfo("orders") != nil)
        await group.shutdown()
    }

    @Test func anIdempotentProducersRetryOnTheNewLeaderSettlesAnIndeterminatePublishExactlyOnce() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let first = try await group.leader(inSync: 3)
        let store = try await group.store(first).leaderStore()
        try await store.declareQueue("orders")
        let producer = try await store.registerProducer(name: "checkout")
        for i in 1...20 {
            let result = try await producer.publish(to: "orders", Message(body: body(i)), sequence: ProducerSequence(rawValue: UInt64(i)))
            guard case .stored = result else { Issue.record("sequence \(i): \(result)"); return }
        }
        // Sequence 21 is written, then the leader goes: confirmed or indeterminate, depending on whether the
        // followers' acknowledgements beat the stop (`aPublishTheLeaderCouldNot...` forces the second).
        let appends = store.logCounters.appends
        let pending = Task { () async -> Result<IdempotentResult<MessageID>, QueueError> in
            do throws(QueueError) {
                return .success(try await producer.publish(to: "orders", Message(body: body(21)), sequence: ProducerSequence(rawValue: 21)))
            } catch { return .failure(error) }
        }
        _ = try await eventually { store.logCounters.appends > appends ? true : nil }
        await group.stop(first)
        let outcome = await pending.value
        if case .success = outcome {
            // Confirmed after all (the followers acknowledged it before the leader went): then it must survive.
        } else if case .failure(let error) = outcome {
            #expect(error.code == .indeterminate, "\(error)")
        }

        // The producer registers again on the new leader and resends from its last confirmed sequence: what
        // was stored comes back as a duplicate, what was not is stored now. Either way, exactly once.
        let second = try await group.leader(inSync: 2)
        let next = try await group.store(second).leaderStore()
        let resumed = try await next.registerProducer(name: "checkout")
        #expect(resumed.id == producer.id && resumed.epoch == producer.epoch + 1)
        let last = try #require(try resumed.lastSequence(queue: "orders")).rawValue
        #expect(last == 20 || last == 21)
        for i in 20...22 {
            _ = try await resumed.publish(to: "orders", Message(body: body(i)), sequence: ProducerSequence(rawValue: UInt64(i)))
        }
        let consumer = try next.consume(queue: "orders", prefetch: 100)
        var bodies: [Int] = []
        for try await delivery in consumer.deliveries {
            bodies.append(try #require(Int(String(decoding: delivery.message.body, as: UTF8.self).dropFirst("message ".count))))
            try await consumer.ack(delivery.tag)
            if bodies.count == 22 { break }
        }
        #expect(bodies.sorted() == Array(1...22))
        #expect(next.queueInfo("orders")?.ready == 0)
        await group.shutdown()
    }

    @Test func aTransactionBegunOnALeaderThatStepsDownIsAbortedAsLeaderChanged() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let first = try await group.leader(inSync: 3)
        let store = try await group.store(first).leaderStore()
        try await store.declareQueue("orders")
        let transaction = store.transaction()
        try transaction.publish(to: "orders", Message(body: body(1)))
        await group.stop(first)
        let aborted = await #expect(throws: QueueError.self) { try await transaction.commit() }
        #expect(aborted?.code == .transactionAborted)
        #expect(aborted?.abortReason == .leaderChanged)
        let later = await #expect(throws: QueueError.self) { try await store.publish(to: "orders", Message(body: [1])) }
        #expect(later?.code == .notLeader)
        let next = try await group.store(try await group.leader(inSync: 2)).leaderStore()
        #expect(next.queueInfo("orders")?.ready == 0)
        await group.shutdown()
    }

    @Test func writesMadeOnAFollowerAreForwardedToTheLeaderAndConfirmedThere() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let leader = try await group.leader(inSync: 3)
        let store = try await group.store(leader).leaderStore()
        try await store.declareQueue("orders")
        try await store.declareStream("events")
        let follower = group.store(["alpha", "beta", "gamma"].first { $0 != leader }!)

        var ids: [MessageID] = []
        for i in 0..<20 { ids.append(try await follower.publish(to: "orders", Message(headers: ["n": "\(i)"], body: body(i)))) }
        #expect(store.queueInfo("orders")?.ready == 20)
        let consumer = try store.consume(queue: "orders", prefetch: 20)
        var iterator = consumer.deliveries.makeAsyncIterator()
        for i in 0..<20 {
            let delivery = try #require(try await iterator.next())
            #expect(delivery.messageID == ids[i])
            #expect(delivery.message == Message(headers: ["n": "\(i)"], body: body(i)))
        }
        let offset = try await follower.append(to: "events", Message(body: body(1)))
        #expect(try store.read(stream: "events", from: offset, limit: 1).first?.message.body == body(1))
        try await follower.commitOffset(stream: "events", group: "billing", offset: offset)
        #expect(try store.committedOffset(stream: "events", group: "billing") == offset)

        // The leader's errors come back as they are.
        let missing = await #expect(throws: QueueError.self) { try await follower.publish(to: "nowhere", Message(body: [1])) }
        #expect(missing?.code == .notFound)
        // And the leader itself takes the same calls directly.
        _ = try await group.store(leader).publish(to: "orders", Message(body: body(20)))
        #expect(store.queueInfo("orders").map { $0.ready + $0.unacked } == 21)
        await group.shutdown()
    }

    @Test func aLeaderWhoseStoreCannotOpenStepsDownForAnotherMember() async throws {
        let group = try StoreGroup(["alpha", "beta"])
        // A node that could not serve its term waits a lease before claiming again: a short one here.
        for member in ["alpha", "beta"] { try await group.start(member, leaseTTL: .seconds(6)) }
        let first = try await group.leader(inSync: 2)
        let other = first == "alpha" ? "beta" : "alpha"
        try await group.store(first).leaderStore().declareQueue("orders")
        await group.stop(first)
        await group.stop(other)
        // The first leader's checkpoint is damaged: its store refuses to open. It leads first again (the other
        // is not running), fails, and must step down so that the other, in sync, can lead.
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: "\(group.root)/\(first)/checkpoint"))
        try await group.start(first, leaseTTL: .seconds(6))
        _ = try await eventually { (try? await group.coordinator.read().state?.epoch ?? 0) ?? 0 >= 3 ? true : nil }
        try await group.start(other, leaseTTL: .seconds(6))
        let serving = try await eventually { () async -> String? in
            guard case .leader = group.store(other).role, (try? await group.store(other).leaderStore()) != nil else { return nil }
            return other
        }
        #expect(serving == other)
        #expect(try await group.store(other).leaderStore().queueInfo("orders") != nil)
        await group.shutdown()
    }

    @Test func aProducerAndATransactionMadeOnAFollowerWorkThroughTheLeaderAndOutliveIt() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        for member in ["alpha", "beta", "gamma"] { try await group.start(member) }
        let first = try await group.leader(inSync: 3)
        let store = try await group.store(first).leaderStore()
        try await store.declareQueue("orders")
        try await store.declareStream("events")
        let members = ["alpha", "beta", "gamma"].filter { $0 != first }
        let follower = group.store(members[0])

        let producer = try await follower.registerProducer(name: "checkout")
        #expect(producer.epoch == 0)
        guard case .stored(let id1) = try await producer.publish(to: "orders", Message(body: body(1)), sequence: 1) else {
            Issue.record("sequence 1 not stored")
            return
        }
        #expect(try await producer.publish(to: "orders", Message(body: body(1)), sequence: 1) == .duplicate(of: id1))
        let skipped = await #expect(throws: QueueError.self) {
            try await producer.publish(to: "orders", Message(body: body(3)), sequence: 3)
        }
        #expect(skipped?.code == .outOfSequence)
        guard case .stored = try await producer.append(to: "events", Message(body: body(1)), sequence: 1) else {
            Issue.record("append 1 not stored")
            return
        }
        #expect(try await producer.lastSequence(queue: "orders") == 1)
        #expect(try await producer.lastSequence(stream: "events") == 1)

        let transaction = follower.transaction()
        try transaction.publish(to: "orders", Message(body: body(10)))
        try transaction.append(to: "events", Message(body: body(11)))
        try transaction.commitOffset(stream: "events", group: "billing", offset: 1)
        let result = try await transaction.commit()
        #expect(result.messageIDs.count == 1 && result.offsets == [1])
        #expect(try store.committedOffset(stream: "events", group: "billing") == 1)
        let refused = follower.transaction()
        try refused.publish(to: "nowhere", Message(body: [0]))
        let aborted = await #expect(throws: QueueError.self) { try await refused.commit() }
        #expect(aborted?.code == .notFound, "the leader adds the operations as they came: \(String(describing: aborted))")
        #expect(store.queueInfo("orders")?.ready == 2)

        // The leader goes; the same producer instance goes on through the new leader, as the follower it was
        // made on may now be.
        await group.stop(first)
        _ = try await group.leader(inSync: 2)
        guard case .stored = try await producer.publish(to: "orders", Message(body: body(2)), sequence: 2) else {
            Issue.record("sequence 2 not stored after the failover")
            return
        }
        #expect(try await producer.publish(to: "orders", Message(body: body(1)), sequence: 1) == .duplicate(of: nil))
        let next = try await group.store(try await group.leader(inSync: 2)).leaderStore()
        #expect(next.queueInfo("orders")?.ready == 3)
        await group.shutdown()
    }

    /// A member whose directory holds another group's log is refused by `start`, with the reason, instead of
    /// joining and stopping later in the background (where only its role would tell).
    @Test func aMemberWhoseDirectoryHoldsAnotherLogIsRefusedAtStart() async throws {
        let group = try StoreGroup(["alpha", "beta", "gamma"])
        try await group.start("alpha")
        try await group.start("beta")
        _ = try await group.leader(inSync: 2)
        try FileManager.default.createDirectory(atPath: "\(group.root)/gamma/wal", withIntermediateDirectories: true)
        let stranger = try WriteAheadLog.open(directory: "\(group.root)/gamma/wal", options: LogOptions())
        _ = try await stranger.append([UInt8](repeating: 7, count: 16))
        try stranger.close()
        let refused = await #expect(throws: QueueError.self) { try await group.start("gamma") }
        #expect(refused?.code == .invalidStore)
        #expect(refused?.message.contains("a directory of another group?") == true, "\(String(describing: refused))")
        #expect(try await group.coordinator.read().state?.inSync.count == 2, "the stranger joined the in-sync set")
        await group.shutdown()
    }

    @Test func roleUpdatesTellLeadershipAndItsEnd() async throws {
        let group = try StoreGroup(["alpha", "beta"])
        try await group.start("alpha")
        let alpha = group.store("alpha")
        var roles = alpha.roleUpdates().makeAsyncIterator()
        var seen: [StoreRole] = []
        while let role = await roles.next() {
            seen.append(role)
            if case .leader = role { break }
        }
        #expect(seen.last == .leader(epoch: 1))

        // A member that joins streams its following, and its leadership once the leader is gone.
        try await group.start("beta")
        let beta = group.store("beta")
        var betaRoles = beta.roleUpdates().makeAsyncIterator()
        while let role = await betaRoles.next(), role != .follower(leader: "alpha", epoch: 1) {
            #expect(![StoreRole.stopped, .leader(epoch: 1)].contains(role), "beta: \(role)")
        }
        _ = try await group.leader(inSync: 2)

        await group.stop("alpha")
        var after: [StoreRole] = []
        while let role = await roles.next() { after.append(role) }
        #expect(after.last == .stopped)
        #expect(alpha.role == .stopped)
        var betaAfter: [StoreRole] = []
        while let role = await betaRoles.next() {
            betaAfter.append(role)
            if case .leader = role { break }
        }
        #expect(betaAfter.last == .leader(epoch: 2), "\(betaAfter)")
        await group.shutdown()
    }
}

@Suite struct ReplicationOutcomeTests {
    /// The replica's outcomes keep their meaning in the queue layer: never turned into a failed log.
    @Test func theLogsReplicationCodesMapToTheirOwnQueueCodes() {
        let notLeader = QueueError.from(WALError(.notLeader, "follows beta", leaderHint: "beta"))
        #expect(notLeader.code == .notLeader)
        #expect(notLeader.leaderHint == "beta")
        #expect(QueueError.from(WALError(.notEnoughReplicas, "alone")).code == .notEnoughReplicas)
        #expect(QueueError.from(WALError(.indeterminate, "stepped down")).code == .indeterminate)
        #expect(QueueError.from(WALError(.logFailed, "sync failed")).code == .logFailed)
    }
}

@Suite struct StoreRequestCodingTests {
    static let requests: [StoreRequest] = [
        .publish(queue: "orders", message: Message(headers: ["b": "2", "a": "1"], body: Array("body".utf8)), persistent: true),
        .publish(queue: "q", message: Message(body: []), persistent: false),
        .append(stream: "events", message: Message(headers: ["k": "ü"], body: [0, 255])),
        .commitOffset(stream: "events", group: "billing", offset: .max),
        .registerProducer(name: "checkout"),
        .producerSend(producer: .init(id: 7, epoch: 2), stream: false, target: "orders", message: Message(body: [1]), sequence: 9),
        .producerSend(producer: .init(id: .max, epoch: .max), stream: true, target: "events", message: Message(body: []), sequence: 1),
        .lastSequence(producer: 7, stream: true, target: "events"),
        .transaction([]),
        .transaction([.publish(queue: "q", message: Message(headers: ["h": "v"], body: [2])),
                      .append(stream: "s", message: Message(body: [3])), .commitOffset(stream: "s", group: "g", offset: 4)]),
    ]

    @Test(arguments: requests) func aRequestDecodesAsItWasEncoded(_ request: StoreRequest) throws {
        #expect(try StoreRequest(decoding: request.encoded) == request)
        // Every shorter prefix is refused, never read past its end.
        let bytes = request.encoded
        for length in 0..<bytes.count {
            #expect(throws: ByteReader.Malformed.self) { try StoreRequest(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: ByteReader.Malformed.self) { try StoreRequest(decoding: bytes + [0]) }
    }

    @Test func everyErrorCodeTravelsAsItself() throws {
        let codes: [QueueError.Code] = [.notFound, .mismatchedOptions, .queueFull, .unknownDeliveryTag, .cancelled,
                                        .pendingFull, .logFailed, .corruption, .invalidArgument, .closed,
                                        .transactionAborted, .unknownProducer, .fenced, .outOfSequence, .locked,
                                        .ioFailure, .invalidStore, .notLeader, .notEnoughReplicas, .indeterminate]
        for code in codes {
            let reply = StoreReply.failed(code, "why", leaderHint: code == .notLeader ? "beta" : nil,
                                          abortReason: code == .transactionAborted ? .leaderChanged : nil)
            #expect(try StoreReply(decoding: reply.encoded) == reply)
        }
        let replies: [StoreReply] = [.done(42), .registered(id: 9, epoch: 3), .duplicate(of: nil), .duplicate(of: 5),
                                     .sequence(nil), .sequence(.max), .committed(messageIDs: [], offsets: []),
                                     .committed(messageIDs: [1, 2], offsets: [3]),
                                     .failed(.transactionAborted, "", leaderHint: nil, abortReason: .refused)]
        for reply in replies {
            #expect(try StoreReply(decoding: reply.encoded) == reply)
            let bytes = reply.encoded
            for length in 0..<bytes.count {
                #expect(throws: ByteReader.Malformed.self) { try StoreReply(decoding: Array(bytes.prefix(length))) }
            }
        }
        #expect(throws: ByteReader.Malformed.self) { try StoreReply(decoding: [99, 0, 0, 0, 0, 0, 0]) }
    }
}
