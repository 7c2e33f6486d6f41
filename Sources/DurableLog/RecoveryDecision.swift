import LogFormat

/// Recovery's decision table (DESIGN.md, "Recovery") as pure functions of what the scan found: no bytes, no
/// files. `Recovery` gathers the facts and acts on the answers; `RecoveryDecisionTests` checks every row.
enum RecoveryDecision {
    /// What lies at a position of a segment where the next intact frame of the log was expected (LSN E).
    enum Position: Equatable, Sendable {
        /// An all-zero frame header: the never-written, preallocated end of a segment.
        case zeros
        /// An intact frame of an earlier segment for records before E: a recycled file's older contents.
        case olderFrame
        /// An intact frame of this log that does not continue it (another segment id, or other LSNs).
        case frameOutOfPlace
        /// Bytes that are not an intact frame (bad magic, version, lengths or checksum).
        case defective
    }

    /// The facts about one such position.
    struct Finding: Equatable, Sendable {
        var position: Position
        /// The position lies in the log's last segment.
        var inLastSegment: Bool
        /// The next segment starts exactly at E (false in the last segment).
        var successorContinues: Bool
        /// An intact frame of this same segment lies somewhere after the position. Only asked for when
        /// `needsOwnFrameSearch` says so (the search reads the rest of the segment).
        var ownFrameAfter: Bool = false
    }

    /// What the scan does at a position.
    enum Step: Equatable, Sendable {
        /// The segment's written part ended normally: go on with the next segment, which must start at E.
        case nextSegment
        /// The log's written part ends here, or something is wrong here: a stop point, decided by `outcome`.
        case stop(RecoveryReport.Cut.Cause, reason: String)
    }

    /// Whether `step` needs `ownFrameAfter` for this position (a closed segment's apparent end).
    static func needsOwnFrameSearch(_ position: Position, inLastSegment: Bool, successorContinues: Bool) -> Bool {
        !inLastSegment && endsWrittenPart(position, inLastSegment: inLastSegment, successorContinues: successorContinues)
    }

    /// Whether the bytes at the position can be where a segment's written part ends: zeros, a recycled file's
    /// older frame, or (in a closed segment whose successor continues exactly) the middle of an older frame.
    private static func endsWrittenPart(_ position: Position, inLastSegment: Bool, successorContinues: Bool) -> Bool {
        switch position {
        case .zeros, .olderFrame: true
        case .defective: !inLastSegment && successorContinues
        case .frameOutOfPlace: false
        }
    }

    static func step(_ f: Finding, defect: String = "defective frame", outOfPlace: String = "intact frame out of place") -> Step {
        guard endsWrittenPart(f.position, inLastSegment: f.inLastSegment, successorContinues: f.successorContinues) else {
            return f.position == .frameOutOfPlace ? .stop(.frameOutOfPlace, reason: outOfPlace) : .stop(.defectiveFrame, reason: defect)
        }
        // The last segment's end is checked for what follows it (even after a seal: zeros right after an
        // earlier close's seal could hide confirmed frames written since).
        if f.inLastSegment {
            return .stop(.endOfData, reason: f.position == .zeros ? "end of data" : "end of data (older contents of a recycled segment)")
        }
        // A closed segment holds nothing of its own after its end; a frame of its own there means frames were
        // lost in between.
        return f.ownFrameAfter ? .stop(.framesAfterEndOfData, reason: "frames of this segment after the end of its data") : .nextSegment
    }

    /// What a stop point is, from what lies after it.
    enum Outcome: Equatable, Sendable {
        /// Nothing was written after it: the log ends here, nothing to cut.
        case cleanEnd
        /// Written but never confirmed (no later frame vouches for it): cut it.
        case tornTail
        /// A later intact frame's watermark reaches E: confirmed records are damaged. Refuse (or salvage).
        case corruption
    }

    /// - Parameters:
    ///   - laterWatermark: the highest durable watermark among intact frames after the stop whose LSNs or
    ///     watermark reach E (`LSN.none` without any).
    ///   - bytesAfter: non-zero bytes of this log's own after the stop in its segment (older contents of a
    ///     recycled file excluded), or later segments, or the stop is a bad segment header.
    static func outcome(expected: LSN, laterWatermark: LSN, bytesAfter: Bool) -> Outcome {
        if laterWatermark >= expected { return .corruption }
        return bytesAfter ? .tornTail : .cleanEnd
    }

    /// The span salvage can replace by a `.lost` frame, from the stop to `end`, or nil when it must cut:
    /// the stop must be inside a segment (not its header) and be followed by an intact frame of the same
    /// segment for later LSNs (or the segment's end, when the next segment starts after E), with room for a
    /// frame header and a record count that fits.
    static func salvageSpan(stopOffset: Int, expected: LSN, segmentHeaderIntact: Bool,
                            nextOwnFrame: (offset: Int, firstLSN: LSN)?, segmentEnd: Int,
                            successorFirstLSN: LSN?) -> (end: Int, endLSN: LSN)? {
        guard stopOffset > 0, segmentHeaderIntact else { return nil }
        var span: (end: Int, endLSN: LSN)?
        if let next = nextOwnFrame, next.firstLSN > expected {
            span = (next.offset, next.firstLSN)
        } else if nextOwnFrame == nil, let successor = successorFirstLSN, successor > expected {
            span = (segmentEnd & ~7, successor)
        }
        guard let span, span.end - stopOffset >= FrameHeader.encodedBytes,
              span.endLSN.rawValue - expected.rawValue <= UInt64(UInt32.max) else { return nil }
        return span
    }
}
