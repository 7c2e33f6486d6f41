import Foundation
import Synchronization

/// The yardstick of issue 12: the smallest group committer worth the name, measured beside the engine in
/// every run. One flusher thread takes everything pending under a mutex, writes it with one `pwrite` into a
/// pre-zeroed file (the ceiling's, overwritten in place), runs one `fdatasync`, then resumes the waiters;
/// one sync at a time, no segments, no frames, no checksums, no compression. Records are length-prefixed
/// as in the engine's batches. What the engine adds on top of this must pay for itself.
final class ReferenceCommitter: @unchecked Sendable {
    private let fd: Int32
    private let fileBytes: Int
    private let mutex = Mutex<State>(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    // Owned by the flusher thread.
    private var writing = Batch()
    private var offset = 0
    private(set) var syncs = 0
    private(set) var records = 0

    private struct Batch {
        var bytes: [UInt8] = []
        var waiters: [UnsafeContinuation<Void, Never>] = []
    }

    private struct State: ~Copyable {
        var pending = Batch()
        var flusherIdle = false
        var stopping = false
    }

    init(fd: Int32, fileBytes: Int) {
        self.fd = fd
        self.fileBytes = fileBytes
        writing.bytes.reserveCapacity(8 << 20)
        Thread.detachNewThread { [self] in flushLoop() }
    }

    /// Returns once an `fdatasync` covering `record` returned.
    func append(_ record: ArraySlice<UInt8>) async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let wakeFlusher = mutex.withLock { state in
                withUnsafeBytes(of: UInt32(record.count).littleEndian) { state.pending.bytes.append(contentsOf: $0) }
                state.pending.bytes.append(contentsOf: record)
                state.pending.waiters.append(c)
                let idle = state.flusherIdle
                state.flusherIdle = false
                return idle
            }
            if wakeFlusher { wake.signal() }
        }
    }

    func stop() {
        let idle = mutex.withLock { state in
            state.stopping = true
            let idle = state.flusherIdle
            state.flusherIdle = false
            return idle
        }
        if idle { wake.signal() }
        finished.wait()
    }

    private func flushLoop() {
        while true {
            let (sleep, stop) = mutex.withLock { state -> (Bool, Bool) in
                if !state.pending.waiters.isEmpty {
                    swap(&state.pending, &writing)
                    return (false, false)
                }
                if state.stopping { return (false, true) }
                state.flusherIdle = true
                return (true, false)
            }
            if stop { break }
            if sleep { wake.wait(); continue }
            if offset + writing.bytes.count > fileBytes { offset = 0 }
            let n = writing.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            precondition(n == writing.bytes.count && fdatasync(fd) == 0, "the reference committer's write failed")
            offset += n
            syncs += 1
            records += writing.waiters.count
            for c in writing.waiters { c.resume() }
            writing.waiters.removeAll(keepingCapacity: true)
            writing.bytes.removeAll(keepingCapacity: true)
        }
        finished.signal()
    }
}

/// Awaited appends through the reference committer: `concurrency` tasks, as in the engine's awaited rows.
struct ReferenceRun {
    var concurrency: Int
    var messagesMax: Int
    var secondsMax: Double

    /// Writes into the pre-zeroed file `fd` of `fileBytes` (the ceiling's), from its start.
    func run(messages: MessageSet, fd: Int32, fileBytes: Int) async throws -> Measurement {
        let committer = ReferenceCommitter(fd: fd, fileBytes: fileBytes)
        let shared = SharedProgress()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(secondsMax * 1e9)
        let latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { _, i in
            await committer.append(messages.bytes[messages.range(i)])
        }
        let cpuEnd = processCPUSeconds()
        committer.stop()
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        return Measurement(
            scenario: "reference c=\(concurrency)" + messages.label, concurrency: concurrency, codec: "none",
            syncsInFlight: 1, messages: Int(latencies.totalCount), seconds: seconds, latencies: latencies,
            recordsPerSync: Double(committer.records) / Double(max(committer.syncs, 1)),
            bytesWrittenPerRecord: Double(messages.size + 4), cpuSeconds: cpuEnd - cpuStart,
            messageBytes: messages.size)
    }
}
