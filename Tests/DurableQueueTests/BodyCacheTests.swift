import Testing
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct BodyCacheTests {
    /// Removed (acked) entries free their room at once, and their stale place in the eviction order does
    /// not evict anything else later.
    @Test func removedEntriesFreeRoomWithoutEvictingOthersLater() {
        let entry = 100 + 64  // body bytes plus the per-entry allowance
        let cache = BodyCache(capacityBytes: 4 * entry)
        let body = Message(body: [UInt8](repeating: 1, count: 100))
        for lsn in UInt64(1)...4 { cache.insert(body, at: lsn) }
        cache.remove([1, 2])
        cache.insert(body, at: 5)
        cache.insert(body, at: 6)
        #expect((3...6).allSatisfy { cache.message(at: UInt64($0)) != nil }, "room came from the removed entries")
        cache.insert(body, at: 7)
        #expect(cache.message(at: 3) == nil && (4...7).allSatisfy { cache.message(at: UInt64($0)) != nil },
                "over capacity the oldest live entry goes, not a newer one")
    }
}
