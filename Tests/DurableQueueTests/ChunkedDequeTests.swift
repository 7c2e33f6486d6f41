import Testing
import WALSimulation
@testable import DurableQueue

/// The queue entries' container: every operation agrees with an array doing the same, across chunk
/// boundaries, and a copy (a checkpoint's snapshot) never sees a change made to the original after it.
@Suite struct ChunkedDequeTests {
    @Test(arguments: [1, 2, 3, 4])
    func everyOperationAgreesWithAnArrayAndCopiesStayApart(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var deque = ChunkedDeque<Int>()
        // The model: an array and how many were taken from its front.
        var model: [Int] = []
        var taken = 0
        var snapshots: [(ChunkedDeque<Int>, [Int])] = []
        var next = 0
        let chunk = ChunkedDeque<Int>.chunkCapacity
        for step in 0..<10_000 {
            let roll = random.next() % 100
            if roll < 40 {
                deque.append(next)
                model.append(next)
                next += 1
            } else if roll < 75 {
                let expected = taken < model.count ? model[taken] : nil
                if expected != nil { taken += 1 }
                #expect(deque.popFirst() == expected)
            } else if roll < 88 {
                guard taken < model.count else { continue }
                let i = Int(random.next() % UInt64(model.count - taken))
                deque[i] = -deque[i]
                model[taken + i] = -model[taken + i]
            } else if roll < 90 {
                let n = Int(random.next() % UInt64(chunk + 10))
                deque.append(contentsOf: next..<(next + n))
                model.append(contentsOf: next..<(next + n))
                next += n
            } else if snapshots.count < 20, roll == 99 {
                snapshots.append((deque, Array(model[taken...])))
            }
            if step % 997 == 0 {
                let live = Array(model[taken...])
                #expect(deque.count == live.count && Array(deque) == live, "step \(step)")
                if !live.isEmpty {
                    let i = Int(random.next() % UInt64(live.count))
                    #expect(deque[i] == live[i])
                    #expect(deque.firstIndex(of: live[i]) == live.firstIndex(of: live[i]))
                }
            }
        }
        model = Array(model[taken...])
        #expect(Array(deque) == model && deque.isEmpty == model.isEmpty)
        #expect(deque == ChunkedDeque(model))
        #expect(!snapshots.isEmpty)
        for (copy, expected) in snapshots { #expect(Array(copy) == expected, "a copy changed after it was taken") }
        var drained: [Int] = []
        while let x = deque.popFirst() { drained.append(x) }
        #expect(drained == model && deque.isEmpty && Array(deque).isEmpty)
        deque.append(7)
        #expect(Array(deque) == [7])
    }
}
