import Foundation
import Testing
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct StreamTests {
    @Test func offsetsAreDenseAndCommittedOffsetsSurviveRestart() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareStream("events")
        for i in 0..<50 {
            let offset = try await store.append(to: "events", text("e\(i)"))
            #expect(offset == StreamOffset(rawValue: UInt64(i)))
        }
        let page = try store.read(stream: "events", from: 10, limit: 5)
        #expect(page.map(\.offset) == [10, 11, 12, 13, 14])
        #expect(page.map { String(decoding: $0.message.body, as: UTF8.self) } == ["e10", "e11", "e12", "e13", "e14"])
        #expect(try store.committedOffset(stream: "events", group: "billing") == nil)
        try await store.commitOffset(stream: "events", group: "billing", offset: 15)
        try store.close()

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        #expect(try store.committedOffset(stream: "events", group: "billing") == 15)
        let resumed = try store.read(stream: "events", from: 15, limit: 1000)
        #expect(resumed.count == 35 && resumed.first?.offset == 15)
        #expect(try await store.append(to: "events", text("after")) == 50)
    }

    @Test func sizeRetentionKeepsTheNewest() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareStream("s", options: StreamOptions(maxBytes: 1000))
        for i in 0..<100 { try await store.append(to: "s", Message(body: Array(repeating: UInt8(i), count: 100))) }
        let info = try #require(store.streamInfo("s"))
        #expect(info.nextOffset == 100 && info.firstOffset == 90 && info.bytes == 1000)
        // Reading before the first retained offset starts at it.
        let records = try store.read(stream: "s", from: 0, limit: 3)
        #expect(records.map(\.offset) == [90, 91, 92])
        #expect(records[0].message.body.first == 90)
    }

    @Test func ageRetentionTrimsOldRecords() async throws {
        let dir = TemporaryDirectory()
        // Maintenance passes are run by the test itself, on a clock it moves.
        let clock = ManualStoreClock()
        var options = testOptions()
        options.clock = clock
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareStream("s", options: StreamOptions(maxAge: .milliseconds(100)))
        for i in 0..<5 { try await store.append(to: "s", text("old\(i)")) }
        clock.advance(by: .milliseconds(150))
        try await store.append(to: "s", text("new"))
        await store.maintain()  // submits the trim of the five older than 100 ms
        try await eventually { store.streamInfo("s")?.firstOffset == 5 }
        #expect(try store.read(stream: "s", from: 0).map(\.offset) == [5])
        #expect(store.streamInfo("s")?.nextOffset == 6)
    }

    @Test func waitForRecordsWakesOnAppend() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareStream("s")
        async let waited: Void = store.waitForRecords(stream: "s", at: 0)
        // Append only once the wait is registered, so that the wake-up is what is tested.
        try await eventually { store.core.withLock { !$0.streamWaiters.isEmpty } }
        try await store.append(to: "s", text("x"))
        try await waited
        #expect(try store.read(stream: "s", from: 0).count == 1)
    }
}
