import DurableLog
import DurableQueue
import Foundation
import LogFormat
import Testing

/// The store's numbers are types of their own; what an application does with them (print, store, compare, count)
/// works on the number they wrap.
@Suite(.timeLimit(.minutes(1))) struct IdentifierTests {
    /// Module-qualified names resolve: no module shares its name with one of its types.
    @Test func moduleQualifiedNamesResolve() {
        let options = DurableLog.LogOptions()
        let store: DurableQueue.StoreOptions = .init()
        let lsn: LogFormat.LSN = .first
        #expect(options.segmentBytes > 0 && store.log.segmentBytes == options.segmentBytes && lsn.rawValue == 1)
        let _: DurableLog.WriteAheadLog.Type = DurableLog.WriteAheadLog.self
        let _: DurableQueue.QueueStore.Type = DurableQueue.QueueStore.self
    }

    @Test func anIdentifierPrintsEncodesAndComparesAsItsNumber() throws {
        let id = MessageID(rawValue: 42)
        #expect("\(id)" == "42" && id < MessageID(rawValue: 43) && !id.isTransient)
        let encoded = try JSONEncoder().encode([id])
        #expect(String(decoding: encoded, as: UTF8.self) == "[42]")
        #expect(try JSONDecoder().decode([MessageID].self, from: encoded) == [id])
        let tags: Set<DeliveryTag> = [DeliveryTag(rawValue: 1), DeliveryTag(rawValue: 1), DeliveryTag(rawValue: 2)]
        #expect(tags.count == 2)
        #expect(HalfMessageID(rawValue: 7).messageID == MessageID(rawValue: 7))
    }

    @Test func offsetsAndSequencesCount() {
        let offset: StreamOffset = 10
        #expect(offset.next == 11 && offset.advanced(by: 5) == 15 && offset.distance(to: 7) == -3)
        #expect(Array(StreamOffset.start..<3) == [0, 1, 2])
        let sequence: ProducerSequence = 1
        #expect(sequence.next == 2 && Array(sequence...3).count == 3)
        #expect(Confirm.ack(sequence: 5, multiple: false) == .ack(sequence: PublishSequence(rawValue: 5), multiple: false))
    }

    /// A transient message has an id of its own (what `publish` returned), and its delivery carries the same.
    @Test func aTransientMessageIsDeliveredWithTheIdItWasPublishedWith() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let transient = try await store.publish(to: "q", text("memory only"), persistent: false)
        let durable = try await store.publish(to: "q", text("on disk"))
        #expect(transient.isTransient && !durable.isTransient)
        let got = try await take(2, from: try store.consume(queue: "q", prefetch: 2))
        #expect(Set(got.map(\.messageID)) == [transient, durable])
    }
}
