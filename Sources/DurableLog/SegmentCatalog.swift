import LogFormat
import Synchronization

/// Where each frame of the log lies: per segment, the first LSN, file offset and size of every frame.
/// The writer adds frames as it writes them; readers look records up here. About 24 bytes per frame.
final class SegmentCatalog: Sendable {
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
        var frames: [FrameLocation]
        /// The LSN after the last record of the segment.
        var endLSN: LSN {
            guard let last = frames.last else { return firstLSN }
            return LSN(last.firstLSN + UInt64(last.recordCount))
        }
    }

    private let segments: Mutex<[Segment]>

    init(_ segments: [Segment]) { self.segments = Mutex(segments) }

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
    func frameRecords(containing lsn: LSN) -> Range<UInt64>? {
        segments.withLock { all in
            guard let s = Self.lastIndex(in: all, where: { $0.firstLSN <= lsn }),
                  let f = Self.lastIndex(in: all[s].frames, where: { $0.firstLSN <= lsn.rawValue }) else { return nil }
            let frame = all[s].frames[f]
            let records = frame.firstLSN..<(frame.firstLSN + UInt64(frame.recordCount))
            return records.contains(lsn.rawValue) ? records : nil
        }
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
