import Histogram

/// WORKLOAD.md's "N concurrent publishers" shape: `concurrency` tasks take message numbers from a shared
/// counter and each awaits its own `send(task, i)` until `messagesMax` or the deadline. Raw latencies stay in one
/// small array per task; the histogram is built after the clock stops (a histogram per task would allocate and
/// fault in half a megabyte inside the timed region).
func runAwaitedProducers(concurrency: Int, messagesMax: Int, deadline: UInt64, shared: SharedProgress,
                         _ send: @escaping @Sendable (_ task: Int, _ i: Int) async throws -> Void) async throws -> Histogram<UInt64> {
    let perTask = messagesMax / concurrency + 2
    let samples = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for task in 0..<concurrency {
            group.addTask {
                var mine: [UInt64] = []
                mine.reserveCapacity(perTask)
                while true {
                    let i = shared.next.add(1, ordering: .relaxed).oldValue
                    if i >= messagesMax || monotonicNanoseconds() >= deadline { break }
                    let t0 = monotonicNanoseconds()
                    try await send(task, i)
                    let t1 = monotonicNanoseconds()
                    mine.append(t1 - t0)
                    _ = shared.lastConfirm.max(t1, ordering: .relaxed)
                }
                return mine
            }
        }
        var all: [[UInt64]] = []
        for try await part in group { all.append(part) }
        return all
    }
    var histogram = newHistogram()
    for part in samples { for value in part { _ = histogram.record(value) } }
    return histogram
}
