import CLZ4
import Foundation
import Synchronization

/// The yardstick of issue 12: the smallest group committer worth the name, measured beside the engine in
/// every run. One flusher thread takes everything pending under a mutex, writes it with one `pwrite` into a
/// pre-zeroed file (the ceiling's, overwritten in place), runs one `fdatasync`, then resumes the waiters;
/// one sync at a time, no segments, no frames, no checksums, no compression. Records are length-prefixed
/// as in the engine's batches. What the engine adds on top of this must pay for itself.
///
/// For issue 12's target 2, two variants of the same loop: without the `fdatasync` (what the task hand-offs
/// alone allow), and with each batch LZ4-compressed before its `pwrite` (the engine's codec, with no frames).
final class ReferenceCommitter: @unchecked Sendable {
    private let fd: Int32
    private let fileBytes: Int
    private let syncsEachBatch: Bool
    private let lz4: Bool
    private var compressed: [UInt8] = []
    private let mutex = Mutex<State>(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    // Owned by the flusher thread.
    private var writing = Batch()
    private var offset = 0
    /// Batches written (each synced, unless the variant does not sync).
    private(set) var syncs = 0
    private(set) var records = 0
    private(set) var bytesWritten = 0
    private(set) var syncNanoseconds: UInt64 = 0

    private struct Batch {
        var bytes: [UInt8] = []
        var waiters: [UnsafeContinuation<Void, Never>] = []
    }

    private struct State: ~Copyable {
        var pending = Batch()
        var flusherIdle = false
        var stopping = false
    }

    init(fd: Int32, fileBytes: Int, sync: Bool = true, lz4: Bool = false) {
        self.fd = fd
        self.fileBytes = fileBytes
        self.syncsEachBatch = sync
        self.lz4 = lz4
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
            let n = lz4 ? writeCompressed() : write(writing.bytes)
            if syncsEachBatch {
                let syncStart = monotonicNanoseconds()
                precondition(fdatasync(fd) == 0, "the reference committer's sync failed")
                syncNanoseconds += monotonicNanoseconds() - syncStart
            }
            offset += n
            bytesWritten += n
            syncs += 1
            records += writing.waiters.count
            for c in writing.waiters { c.resume() }
            writing.waiters.removeAll(keepingCapacity: true)
            writing.bytes.removeAll(keepingCapacity: true)
        }
        finished.signal()
    }

    /// Writes `bytes` at the next offset (from the file's start again when they would pass its end).
    private func write(_ bytes: [UInt8]) -> Int {
        if offset + bytes.count > fileBytes { offset = 0 }
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        precondition(n == bytes.count, "the reference committer's write failed")
        return n
    }

    /// The batch LZ4-compressed behind its compressed length, as the ceiling's inline row does.
    private func writeCompressed() -> Int {
        let bound = Int(LZ4_compressBound(Int32(writing.bytes.count))) + 4
        if compressed.count < bound { compressed = [UInt8](repeating: 0, count: bound) }
        let length = writing.bytes.withUnsafeBytes { src in
            compressed.withUnsafeMutableBytes { dst in
                let n = LZ4_compress_default(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                             (dst.baseAddress! + 4).assumingMemoryBound(to: CChar.self),
                                             Int32(src.count), Int32(dst.count - 4))
                dst.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 0, as: UInt32.self)
                return Int(n) + 4
            }
        }
        if offset + length > fileBytes { offset = 0 }
        let n = compressed.withUnsafeBytes { pwrite(fd, $0.baseAddress, length, off_t(offset)) }
        precondition(n == length, "the reference committer's write failed")
        return n
    }
}

/// Awaited appends through the reference committer: `concurrency` tasks, as in the engine's awaited rows.
struct ReferenceRun {
    var concurrency: Int
    /// Whether each batch is synced (target 2's variants do not).
    var sync = true
    var lz4 = false
    var messagesMax: Int
    var secondsMax: Double

    /// Writes into the pre-zeroed file `fd` of `fileBytes` (the ceiling's), from its start.
    func run(messages: MessageSet, fd: Int32, fileBytes: Int) async throws -> Measurement {
        let committer = ReferenceCommitter(fd: fd, fileBytes: fileBytes, sync: sync, lz4: lz4)
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
        var measurement = Measurement(
            scenario: "reference c=\(concurrency)" + (lz4 ? " lz4" : "") + (sync ? "" : " UNSAFE no-sync") + messages.label,
            concurrency: concurrency, codec: lz4 ? "lz4" : "none",
            syncsInFlight: 1, messages: Int(latencies.totalCount), seconds: seconds, latencies: latencies,
            recordsPerSync: Double(committer.records) / Double(max(committer.syncs, 1)),
            bytesWrittenPerRecord: Double(committer.bytesWritten) / Double(max(committer.records, 1)),
            cpuSeconds: cpuEnd - cpuStart, messageBytes: messages.size)
        measurement.syncMicrosecondsMean = Double(committer.syncNanoseconds) / Double(max(committer.syncs, 1)) / 1000
        return measurement
    }
}
