import LogFormat
import Synchronization

/// Where each frame of the log lies: per segment, the first LSN, file offset and size of every frame.
/// The writer adds frames as it writes them; readers look records up here. About 24 bytes per frame.
///
/// A closed segment that a checkpoint above covers may be left unindexed by the open (its frame headers are
/// not read then: a large log opens without walking all of them); the first read that needs its frames indexes
/// it with `indexer` and keeps the result.
final class SegmentCatalog: Sendable {
    /// Walks a segment's frame headers; throws `.corruption` when they do not lead from its first LSN to its end.
    typealias Indexer = @Sendable (Segment) throws(WALError) -> [FrameLocation]

    struct FrameLocation: Sendable {
        var firstLSN: UInt64
        var offset: UInt32
        var frameBytes: UInt32
        var recordCount: UInt32
        /// A `.lost` frame: salvage replaced these records' damaged bytes; they cannot be read.
        var lost = false
    }

    struct Segment: Sendable {
        var segmentID: SegmentID
        var firstLSN: LSN
        var path: String
        /// Empty while `unindexedEnd` is set.
        var frames: [FrameLocation]
        /// Set for a closed segment not indexed yet: the LSN after its last record (the next segment's first).
        var unindexedEnd: LSN? = nil
        /// The LSN after the last record of the segment.
        var endLSN: LSN {
            if let unindexedEnd { return unindexedEnd }
            guard let last = frames.last else { return firstLSN }
            return LSN(last.firstLSN + UInt64(last.recordCount))
        }
    }

    private let segments: Mutex<[Segment]>
    private let indexer: Indexer?

    init(_ segments: [Segment], indexer: Indexer? = nil) {
        self.segments = Mutex(segments)
        self.indexer = indexer
    }

    /// A segment's frames, indexing it first when the open left it unindexed (outside the lock: the walk reads
    /// one frame header per frame; two readers may both walk it, the result is the same).
    func frames(of segment: Segment) throws(WALError) -> [FrameLocation] {
        guard segment.unindexedEnd != nil else { return segment.frames }
        guard let indexer else {
            throw WALError(.invalidLog, "segment \(segment.segmentID) is not indexed", path: segment.path)
        }
        let frames = try indexer(segment)
        segments.withLock { all in
            guard let i = all.firstIndex(where: { $0.segmentID == segment.segmentID }) else { return }
            all[i].frames = frames
            all[i].unindexedEnd = nil
        }
        return frames
    }

    func add(_ segment: Segment) { segments.withLock { $0.append(segment) } }

    /// Adds frames written into the last segment.
    func addFrames(_ frames: UnsafeBufferPointer<FrameLocation>) {
        segments.withLock { all in
            precondition(!all.isEmpty)
            all[all.count - 1].frames.append(contentsOf: frames)
        }
    }

    /// The first LSN still in the log.
    var firstLSN: LSN { segments.withLock { $0.first?.firstLSN ?? .first } }

    var snapshot: [Segment] { segments.withLock { $0 } }

    /// Removes the oldest segments whose records all lie below `lsn`, never the last one; returns their paths.
    func removeSegments(below lsn: LSN) -> [String] {
        segments.withLock { all in
            var removed: [String] = []
            while all.count > 1, all[0].endLSN <= lsn, all[1].firstLSN <= lsn {
                removed.append(all.removeFirst().path)
            }
            return removed
        }
    }

    /// The LSNs of the records in the frame that holds `lsn`, or nil when no frame in the log holds it.
    /// Indexes the segment first if needed; nil too when that fails (the read of the record then reports why).
    func frameRecords(containing lsn: LSN) -> Range<UInt64>? {
        let segment: Segment? = segments.withLock { all in
            Self.lastIndex(in: all, where: { $0.firstLSN <= lsn }).map { all[$0] }
        }
        guard let segment, let frames = try? self.frames(of: segment),
              let f = Self.lastIndex(in: frames, where: { $0.firstLSN <= lsn.rawValue }) else { return nil }
        let frame = frames[f]
        let records = frame.firstLSN..<(frame.firstLSN + UInt64(frame.recordCount))
        return records.contains(lsn.rawValue) ? records : nil
    }

    /// Binary search for the last element satisfying a predicate that holds for a prefix.
    static func lastIndex<T>(in array: [T], where isAtOrBefore: (T) -> Bool) -> Int? {
        var low = 0, high = array.count
        while low < high {
            let mid = (low + high) / 2
            if isAtOrBefore(array[mid]) { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : low - 1
    }
}
