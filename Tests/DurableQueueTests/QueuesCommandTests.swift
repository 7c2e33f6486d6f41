import Foundation
import Testing
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct QueuesCommandTests {
    /// `walctl queues` reads a store's checkpoint and log without opening it: counts, offsets, JSON.
    @Test func walctlQueuesShowsCountsAndOffsets() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("orders")
        for i in 0..<5 { try await store.publish(to: "orders", text("\(i)")) }
        let c = try store.consume(queue: "orders", prefetch: 2)
        let got = try await take(2, from: c)
        try await c.ack(got[0].tag)
        try store.checkpoint()
        try await store.declareStream("events")
        for i in 0..<3 { try await store.append(to: "events", text("\(i)")) }
        try await store.commitOffset(stream: "events", group: "g", offset: 2)
        let producer = try await store.registerProducer(name: "shop")
        for sequence in 1...3 as ClosedRange<ProducerSequence> { _ = try await producer.publish(to: "orders", text("idem"), sequence: sequence) }
        let half = try await store.prepare(to: "orders", text("half"))
        let before = try FileManager.default.attributesOfItem(atPath: dir.path + "/checkpoint")[.modificationDate] as? Date

        let walctl = Process()
        walctl.executableURL = URL(fileURLWithPath: productsDirectory() + "/walctl")
        walctl.arguments = ["queues", dir.path, "--json"]
        let pipe = Pipe()
        walctl.standardOutput = pipe
        try walctl.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        walctl.waitUntilExit()
        #expect(walctl.terminationStatus == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
        let queues = try #require(object["queues"] as? [[String: Any]])
        #expect(queues.count == 1)
        #expect(queues[0]["name"] as? String == "orders")
        // Five published, one acked, three idempotent publishes; the consumer's refill may or may not have been
        // checked out yet; the half message is not counted.
        #expect((queues[0]["ready"] as? Int ?? 0) + (queues[0]["unacked"] as? Int ?? 0) == 7)
        let streams = try #require(object["streams"] as? [[String: Any]])
        #expect(streams[0]["nextOffset"] as? Int == 3)
        #expect((streams[0]["committedOffsets"] as? [String: Int]) == ["g": 2])
        let producers = try #require(object["producers"] as? [[String: Any]])
        #expect(producers.count == 1 && producers[0]["name"] as? String == "shop")
        #expect((producers[0]["lastSequences"] as? [String: Int]) == ["orders": 3])
        let halves = try #require(object["halfMessages"] as? [[String: Any]])
        #expect(halves.count == 1 && halves[0]["id"] as? Int == Int(half.rawValue) && halves[0]["queue"] as? String == "orders")
        #expect((object["checkpointLSN"] as? Int ?? 0) > 0 && (object["replayedRecords"] as? Int ?? 0) >= 5)
        let after = try FileManager.default.attributesOfItem(atPath: dir.path + "/checkpoint")[.modificationDate] as? Date
        #expect(before == after, "read-only")
        try store.close()
    }
}
