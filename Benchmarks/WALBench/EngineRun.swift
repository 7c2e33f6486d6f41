import Foundation
import Histogram
import LogFormat
import Synchronization
import DurableLog

/// Durable appends through the write-ahead log: `concurrency` tasks, each appending and awaiting its
/// confirm (WORKLOAD.md §2's "64 concurrent publishers" shape), or one producer with a window of
/// `concurrency` unconfirmed appends using the callback form (the "windowed publisher" shape).
struct EngineRun {
    enum Shape: String { case awaited, windowed, blocking }

    var shape: Shape = .awaited
    var concurrency: Int
    var codec: FrameHeader.Codec = .lz4
    var syncsInFlight = LogOptions().syncsInFlightMax
    var durability: LogOptions.Durability = .fdatasync
    /// Steady state: before the clock starts, the log is filled past two segments and truncated, as a queue
    /// whose consumers keep up would be, so that the next segments are recycled spares (no zero-fill while
    /// the run is measured). Without it every run starts a fresh log, which zero-fills as it grows.
    var steadyState = false
    var messagesMax: Int
    var secondsMax: Double

    func run(messages: MessageSet, directory: String) async throws -> Measurement {
        let dir = directory + "/log-\(UUID().uuidString.prefix(8))"
        var options = LogOptions()
        options.compression = codec
        options.syncsInFlightMax = syncsInFlight
        options.durability = durability
        let log = try WriteAheadLog.open(directory: dir, options: options)
        defer {
            try? log.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
        if steadyState { try await recycleTwoSegments(log) }
        let countersBefore = log.counters
        let shared = SharedProgress()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(secondsMax * 1e9)
        var latencies = newHistogram()
        var cpuEnd = 0.0

        switch shape {
        case .awaited:
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { _, i in
                _ = try await log.append(messages.bytes[messages.range(i)])
            }
            cpuEnd = processCPUSeconds()
        case .windowed:
            latencies = try windowed(log: log, messages: messages, deadline: deadline, shared: shared)
            cpuEnd = processCPUSeconds()
        case .blocking:
            latencies = blocking(log: log, messages: messages, deadline: deadline, shared: shared)
            cpuEnd = processCPUSeconds()
        }
        let confirmed = Int(latencies.totalCount)
        let counters = log.counters.since(countersBefore)
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        // Without syncs the column shows records per group written: how much each write gathered.
        let perSync = durability == .unsafeNoSync && counters.groups > 0
            ? Double(counters.records) / Double(counters.groups) : counters.recordsPerSync
        var measurement = Measurement(
            scenario: "wal \(shape.rawValue) c=\(concurrency)" + (durability == .unsafeNoSync ? " UNSAFE-nosync" : "")
                + (steadyState ? " steady" : "") + messages.label,
            concurrency: concurrency, codec: codec == .lz4 ? "lz4" : "none", syncsInFlight: syncsInFlight,
            messages: confirmed, seconds: seconds, latencies: latencies, recordsPerSync: perSync,
            bytesWrittenPerRecord: counters.bytesWrittenPerRecord, cpuSeconds: cpuEnd - cpuStart, messageBytes: messages.size)
        measurement.syncMicrosecondsMean = counters.syncMicrosecondsMean
        return measurement
    }

    /// Fills the log past two segments with large incompressible records, then truncates all but the active
    /// segment: the freed ones become the log's spares.
    private func recycleTwoSegments(_ log: WriteAheadLog) async throws {
        var rng = SystemRandomNumberGenerator()
        let record = (0..<(log.options.recordBytesMax)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        while log.segments.count < 3 { _ = try await log.append(contentsOf: [record, record, record, record]) }
        try log.truncate(before: log.durableLSN.next)
    }

    /// `concurrency` threads of their own, each appending with `appendAndWait` (no Swift tasks involved).
    private func blocking(log: WriteAheadLog, messages: MessageSet, deadline: UInt64, shared: SharedProgress) -> Histogram<UInt64> {
        let samples = LatencySlots(count: messagesMax)
        let done = DispatchGroup()
        for _ in 0..<concurrency {
            done.enter()
            Thread.detachNewThread { [messagesMax] in
                messages.bytes.withUnsafeBytes { bytes in
                    while true {
                        let i = shared.next.add(1, ordering: .relaxed).oldValue
                        if i >= messagesMax || monotonicNanoseconds() >= deadline { break }
                        let t0 = monotonicNanoseconds()
                        guard (try? log.appendAndWait(UnsafeRawBufferPointer(rebasing: bytes[messages.range(i)]))) != nil else { break }
                        let t1 = monotonicNanoseconds()
                        samples.set(i, t1 - t0)
                        _ = shared.lastConfirm.max(t1, ordering: .relaxed)
                    }
                }
                done.leave()
            }
        }
        done.wait()
        var histogram = newHistogram()
        for i in 0..<min(messagesMax, shared.next.load(ordering: .relaxed)) where samples.get(i) > 0 {
            _ = histogram.record(samples.get(i))
        }
        return histogram
    }

    /// One producer thread keeps `concurrency` appends in flight; completions run on the log's threads.
    private func windowed(log: WriteAheadLog, messages: MessageSet, deadline: UInt64,
                          shared: SharedProgress) throws -> Histogram<UInt64> {
        let slots = DispatchSemaphore(value: concurrency)
        // One slot per message, written by that message's completion only (0 = not confirmed).
        let samples = LatencySlots(count: messagesMax)
        var issued = 0
        try messages.bytes.withUnsafeBytes { bytes in
            while issued < messagesMax && monotonicNanoseconds() < deadline {
                slots.wait()
                let slot = issued
                let t0 = monotonicNanoseconds()
                let record = UnsafeRawBufferPointer(rebasing: bytes[messages.range(issued)])
                while true {
                    do {
                        try log.append(record) { result in
                            let t1 = monotonicNanoseconds()
                            if case .success = result { samples.set(slot, max(1, t1 - t0)) }
                            _ = shared.lastConfirm.max(t1, ordering: .relaxed)
                            slots.signal()
                        }
                        break
                    } catch let e as WALError where e.code == .pendingFull {
                        usleep(50)
                    }
                }
                issued += 1
            }
        }
        for _ in 0..<concurrency { slots.wait() }
        for _ in 0..<concurrency { slots.signal() }  // libdispatch refuses to free a semaphore below its start value
        var histogram = newHistogram()
        for i in 0..<issued where samples.get(i) > 0 { _ = histogram.record(samples.get(i)) }
        return histogram
    }
}

/// Preallocated latency slots, each written by exactly one completion callback.
final class LatencySlots: @unchecked Sendable {
    private let values: UnsafeMutableBufferPointer<UInt64>
    init(count: Int) {
        values = .allocate(capacity: count)
        values.initialize(repeating: 0)
    }
    deinit { values.deallocate() }
    func set(_ i: Int, _ value: UInt64) { values[i] = value }
    func get(_ i: Int) -> UInt64 { values[i] }
}

/// Progress shared by the producers of one run.
final class SharedProgress: Sendable {
    let next = Atomic<Int>(0)
    let lastConfirm = Atomic<UInt64>(0)
}
