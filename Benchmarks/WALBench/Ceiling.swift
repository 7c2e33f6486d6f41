import CLZ4
import Foundation
import Histogram

/// The disk's ceiling (WORKLOAD.md §3): one thread, one `pwrite` of b messages then one `fdatasync`, on a
/// preallocated, zero-filled file overwritten in place (or, `growing`, appended to a new file, so that each
/// sync also commits the file's new size), optionally LZ4-compressing each batch inline.
final class CeilingFile {
    let path: String
    let fd: Int32
    let bytes: Int
    let growing: Bool
    /// Allocated (unwritten extents) but never written: each run starts from a freshly allocated file, so
    /// that every write converts extents, as in a new segment that was not zero-filled.
    let allocatedOnly: Bool

    init(directory: String, bytes: Int, growing: Bool = false, zeroed: Bool = true) throws {
        allocatedOnly = !growing && !zeroed
        path = directory + (growing ? "/ceiling-growing.dat" : zeroed ? "/ceiling.dat" : "/ceiling-allocated.dat")
        self.bytes = bytes
        self.growing = growing
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path)") }
        if growing { return }
        guard posix_fallocate(fd, 0, off_t(bytes)) == 0 else { throw BenchError("fallocate failed") }
        if !zeroed { return }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        var offset = 0
        while offset < bytes {
            let n = pwrite(fd, zeros, zeros.count, off_t(offset))
            guard n > 0 else { throw BenchError("zero-fill failed") }
            offset += n
        }
        guard fsync(fd) == 0 else { throw BenchError("fsync failed") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Runs batches of `batch` messages until `messagesMax` are written or `secondsMax` passed.
    func run(messages: MessageSet, batch: Int, lz4: Bool, messagesMax: Int, secondsMax: Double) -> Measurement {
        let source = messages.bytes
        let batchBytes = batch * messages.size
        var compressed = [UInt8](repeating: 0, count: Int(LZ4_compressBound(Int32(batchBytes))) + 8)
        var latencies = newHistogram()
        var offset = 0
        var done = 0
        var written = 0
        if allocatedOnly {
            precondition(ftruncate(fd, 0) == 0 && posix_fallocate(fd, 0, off_t(bytes)) == 0 && fsync(fd) == 0,
                         "could not allocate the ceiling file afresh")
        }
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(secondsMax * 1e9)
        var now = start
        while done < messagesMax && now < deadline {
            let batchStart = monotonicNanoseconds()
            let sourceOffset = (done * messages.size) % (source.count - batchBytes + 1)
            var length = batchBytes
            source.withUnsafeBytes { src in
                let base = src.baseAddress! + sourceOffset
                if lz4 {
                    compressed.withUnsafeMutableBytes { dst in
                        let n = LZ4_compress_default(base.assumingMemoryBound(to: CChar.self),
                                                     (dst.baseAddress! + 8).assumingMemoryBound(to: CChar.self),
                                                     Int32(batchBytes), Int32(dst.count - 8))
                        dst.storeBytes(of: UInt32(n), toByteOffset: 0, as: UInt32.self)
                        dst.storeBytes(of: UInt32(batch), toByteOffset: 4, as: UInt32.self)
                        length = Int(n) + 8
                        if offset + length > bytes { offset = growing ? startOver() : 0 }
                        _ = pwrite(fd, dst.baseAddress!, length, off_t(offset))
                    }
                } else {
                    if offset + length > bytes { offset = growing ? startOver() : 0 }
                    _ = pwrite(fd, base, length, off_t(offset))
                }
            }
            precondition(fdatasync(fd) == 0, "fdatasync failed in the ceiling loop")
            offset += length
            written += length
            done += batch
            now = monotonicNanoseconds()
            _ = latencies.record(now - batchStart)
        }
        let seconds = Double(now - start) / 1e9
        return Measurement(
            scenario: "ceiling\(growing ? " growing" : "") b=\(batch)" + (lz4 ? " lz4" : "") + messages.label, concurrency: batch, codec: lz4 ? "lz4" : "none",
            syncsInFlight: 1, messages: done, seconds: seconds, latencies: latencies, recordsPerSync: Double(batch),
            bytesWrittenPerRecord: Double(written) / Double(max(done, 1)), cpuSeconds: processCPUSeconds() - cpuStart,
            messageBytes: messages.size)
    }

    /// A growing file that reached its size starts again empty (truncated and synced outside the timing
    /// that matters: it happens once per `bytes`).
    private func startOver() -> Int {
        _ = ftruncate(fd, 0)
        _ = fsync(fd)
        return 0
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}
