import Dispatch
import LogFormat

/// How an append is told that its records are durable (or that they never will be).
enum Completion {
    /// Resumed with the first LSN, or with `PendingBatch.retryToken` to say "room is free, submit again".
    case async(UnsafeContinuation<UInt64, any Error>)
    case callback(@Sendable (Result<LSN, WALError>) -> Void)
    case blocking(BlockingWaiter)
    /// Completed together with the other submissions of its release that name the same sink (one call).
    case sink(any CompletionSink, token: AnyObject)

    func complete(_ result: Result<LSN, WALError>) {
        switch self {
        case .async(let c):
            switch result {
            case .success(let lsn): c.resume(returning: lsn.rawValue)
            case .failure(let e): c.resume(throwing: e)
            }
        case .callback(let f): f(result)
        case .blocking(let w): w.finish(result)
        case .sink(let sink, let token):
            switch result {
            case .success(let lsn): sink.complete([(lsn, token)], failure: nil)
            case .failure(let e): sink.complete([(LSN(0), token)], failure: e)
            }
        }
    }
}

/// A layer on the log that takes its confirms a release at a time instead of one call per submission: one
/// call (so one lock acquisition, one pass of follow-up work) for every submission a sync made durable.
package protocol CompletionSink: AnyObject, Sendable {
    /// Submissions appended with this sink, in LSN order, each with its first LSN and the token it was
    /// appended with; `failure` is set when they all failed with it (their LSNs then mean nothing). Called
    /// without the log's lock, on a log thread (or on an appender's, see `tryAppend`'s `callbackOnCaller`).
    /// Calls for successive releases can overlap on two log threads: order them by LSN.
    func complete(_ submissions: [(firstLSN: LSN, token: AnyObject)], failure: WALError?)
}

/// A thread blocked in a synchronous append.
final class BlockingWaiter: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private var result: Result<LSN, WALError>?

    func finish(_ r: Result<LSN, WALError>) {
        result = r
        semaphore.signal()
    }

    func wait() -> Result<LSN, WALError> {
        semaphore.wait()
        return result ?? .failure(WALError(.closed, "the append was never completed"))
    }
}

struct Waiter {
    var firstLSN: LSN
    var completion: Completion
}

/// Records accepted but not yet written: their batch payload laid out as it will be framed, where the
/// frames will be cut, and who waits for them. Producers fill one under the committer's lock; the writer
/// swaps it for an empty one and encodes it without the lock. Buffers are kept and reused.
struct PendingBatch {
    /// Sentinel resumed into an async append that waited for room: submit again.
    static let retryToken = UInt64.max

    struct FrameCut { var payloadEnd: Int; var recordCount: Int }

    var payload: [UInt8] = []
    var cuts: [FrameCut] = []
    var openFrameStart = 0
    var openFrameRecords = 0
    var firstLSN = LSN.first
    var recordCount = 0
    var waiters: [Waiter] = []
    /// A follower's batch: runs of frames its leader wrote, laid one after the other in `payload` (each
    /// ending at its `payloadEnd`), with their catalog entries; `cuts` stay empty.
    var shipped: [ShippedRun] = []
    var shippedLocations: [SegmentCatalog.FrameLocation] = []

    struct ShippedRun {
        var segmentID: SegmentID
        var offset: Int
        var firstLSN: LSN
        var payloadEnd: Int
        var locationsEnd: Int
    }

    init(capacity: Int, firstLSN: LSN) {
        payload.reserveCapacity(capacity)
        cuts.reserveCapacity(64)
        waiters.reserveCapacity(1024)
        self.firstLSN = firstLSN
    }

    var isEmpty: Bool { recordCount == 0 && shipped.isEmpty }
    var endLSN: LSN { firstLSN + UInt64(recordCount) }

    /// Adds one record, cutting a new frame first when it would push the open frame past `frameBytesMax`.
    mutating func add(_ record: UnsafeRawBufferPointer, frameBytesMax: Int) {
        cutFrameIfFull(adding: BatchPayload.lengthPrefixBytes + record.count, frameBytesMax: frameBytesMax)
        BatchPayload.append(record, to: &payload)
        openFrameRecords += 1
        recordCount += 1
    }

    /// Adds one record of `size` bytes that `write` lays out in place (it must fill the buffer it is given):
    /// the caller's encoding goes straight into the batch, with no copy of its own in between.
    mutating func add(size: Int, frameBytesMax: Int, _ write: (UnsafeMutableRawBufferPointer) -> Void) {
        let total = BatchPayload.lengthPrefixBytes + size
        cutFrameIfFull(adding: total, frameBytesMax: frameBytesMax)
        let start = payload.count
        // The slot is made by copying zeros (a `memcpy` from a buffer the CPU holds in its cache), which is
        // several times cheaper than appending a repeated zero byte by byte; `write` overwrites them all.
        var zeroed = 0
        while zeroed < total {
            let n = min(ZeroBytes.buffer.count, total - zeroed)
            payload.append(contentsOf: UnsafeRawBufferPointer(rebasing: ZeroBytes.buffer[0..<n]))
            zeroed += n
        }
        payload.withUnsafeMutableBytes { buffer in
            buffer.storeBytes(of: UInt32(size).littleEndian, toByteOffset: start, as: UInt32.self)
            write(UnsafeMutableRawBufferPointer(rebasing: buffer[(start + BatchPayload.lengthPrefixBytes)..<(start + total)]))
        }
        openFrameRecords += 1
        recordCount += 1
    }

    private mutating func cutFrameIfFull(adding size: Int, frameBytesMax: Int) {
        if openFrameRecords > 0 && payload.count - openFrameStart + size > frameBytesMax {
            cuts.append(FrameCut(payloadEnd: payload.count, recordCount: openFrameRecords))
            openFrameStart = payload.count
            openFrameRecords = 0
        }
    }

    /// Where the batch stood before a submission's records were added, to take them out again.
    struct Mark { var payloadCount, cutCount, openFrameStart, openFrameRecords, recordCount: Int }

    var mark: Mark {
        Mark(payloadCount: payload.count, cutCount: cuts.count, openFrameStart: openFrameStart,
             openFrameRecords: openFrameRecords, recordCount: recordCount)
    }

    /// Takes out every record added since `mark` (a submission refused after its records were laid out).
    mutating func rollBack(to mark: Mark) {
        payload.removeSubrange(mark.payloadCount...)
        cuts.removeSubrange(mark.cutCount...)
        openFrameStart = mark.openFrameStart
        openFrameRecords = mark.openFrameRecords
        recordCount = mark.recordCount
    }

    /// Adds a verified run of a leader's frames (a follower's batch).
    mutating func addShipped(_ run: ShippedFrames, _ verified: ShippedFrames.Verified) {
        payload.append(contentsOf: run.bytes)
        shippedLocations.append(contentsOf: verified.locations)
        shipped.append(ShippedRun(segmentID: run.segmentID, offset: run.offset, firstLSN: verified.firstLSN,
                                  payloadEnd: payload.count, locationsEnd: shippedLocations.count))
        recordCount += verified.recordCount
    }

    /// Closes the open frame; called by the writer before encoding.
    mutating func closeFrames() {
        if openFrameRecords > 0 {
            cuts.append(FrameCut(payloadEnd: payload.count, recordCount: openFrameRecords))
            openFrameStart = payload.count
            openFrameRecords = 0
        }
    }

    /// Empties the batch, keeping its buffers, for records from `firstLSN` on.
    mutating func reset(firstLSN: LSN) {
        payload.removeAll(keepingCapacity: true)
        cuts.removeAll(keepingCapacity: true)
        waiters.removeAll(keepingCapacity: true)
        shipped.removeAll(keepingCapacity: true)
        shippedLocations.removeAll(keepingCapacity: true)
        openFrameStart = 0
        openFrameRecords = 0
        recordCount = 0
        self.firstLSN = firstLSN
    }
}
