import LogFormat
import Testing
@testable import DurableLog

/// One test per row of the recovery decision table in DESIGN.md ("Recovery"), against the pure functions
/// that `Recovery` acts on: what the scan does at a position, what a stop point is from what follows it, and
/// what salvage can bound.
@Suite(.timeLimit(.minutes(1))) struct RecoveryDecisionTests {
    typealias D = RecoveryDecision
    let e = LSN(100)

    private func finding(_ p: D.Position, last: Bool, continues: Bool = false, ownAfter: Bool = false) -> D.Finding {
        D.Finding(position: p, inLastSegment: last, successorContinues: continues, ownFrameAfter: ownAfter)
    }

    private func isStop(_ step: D.Step) -> Bool { if case .stop = step { true } else { false } }

    // Row: all-zero header, nothing non-zero after it, no later segment -> clean end.
    @Test func zerosAtTheEndOfTheLastSegmentAreACleanEnd() {
        #expect(D.step(finding(.zeros, last: true)) == .stop(.endOfData, reason: "end of data"))
        #expect(D.outcome(expected: e, laterWatermark: .none, bytesAfter: false) == .cleanEnd)
        #expect(D.outcome(expected: e, laterWatermark: LSN(99), bytesAfter: false) == .cleanEnd)
    }

    // Row: zeros, then garbage or intact unconfirmed frames -> torn tail; vouched -> corruption.
    @Test func zerosFollowedByBytesAreATornTailUnlessVouched() {
        #expect(isStop(D.step(finding(.zeros, last: true))))
        #expect(D.outcome(expected: e, laterWatermark: LSN(99), bytesAfter: true) == .tornTail)
        #expect(D.outcome(expected: e, laterWatermark: e, bytesAfter: true) == .corruption)
    }

    // Row: defective frame -> torn tail, or corruption when a later watermark reaches E.
    @Test func aDefectiveFrameStopsTheScan() {
        #expect(D.step(finding(.defective, last: true), defect: "frame checksum mismatch")
                == .stop(.defectiveFrame, reason: "frame checksum mismatch"))
        #expect(D.step(finding(.defective, last: false, continues: false)) == .stop(.defectiveFrame, reason: "defective frame"))
        #expect(D.outcome(expected: e, laterWatermark: .none, bytesAfter: true) == .tornTail)
        #expect(D.outcome(expected: e, laterWatermark: LSN(250), bytesAfter: true) == .corruption)
    }

    // Row: intact frame of another segment id, or not continuing the LSNs -> stop (torn or corruption).
    @Test func anIntactFrameOutOfPlaceStopsTheScan() {
        for last in [true, false] {
            for continues in [true, false] where !(last && continues) {
                #expect(D.step(finding(.frameOutOfPlace, last: last, continues: continues), outOfPlace: "x") == .stop(.frameOutOfPlace, reason: "x"))
            }
        }
        #expect(!D.needsOwnFrameSearch(.frameOutOfPlace, inLastSegment: false, successorContinues: true))
    }

    // Row: bad segment header (a stop at offset 0) -> the segment is cut (torn) or corruption if vouched.
    @Test func aBadSegmentHeaderIsBytesAfterTheStop() {
        // `bytesAfter` is true for a stop at a segment header: the segment itself goes.
        #expect(D.outcome(expected: e, laterWatermark: .none, bytesAfter: true) == .tornTail)
        #expect(D.outcome(expected: e, laterWatermark: LSN(101), bytesAfter: true) == .corruption)
        #expect(D.salvageSpan(stopOffset: 0, expected: e, segmentHeaderIntact: false, nextOwnFrame: (8192, LSN(120)),
                              segmentEnd: 65536, successorFirstLSN: LSN(200)) == nil)
    }

    // Row: zeros or an older segment's frame in a non-last segment, nothing of its own after -> go on.
    @Test func aClosedSegmentsEndGoesOnToTheNextSegment() {
        for p in [D.Position.zeros, .olderFrame] {
            #expect(D.needsOwnFrameSearch(p, inLastSegment: false, successorContinues: true))
            #expect(D.step(finding(p, last: false, continues: true)) == .nextSegment)
        }
    }

    // Row: defective bytes in a non-last segment whose successor starts exactly at E -> go on (older bytes).
    @Test func olderBytesOfARecycledClosedSegmentGoOn() {
        #expect(D.needsOwnFrameSearch(.defective, inLastSegment: false, successorContinues: true))
        #expect(D.step(finding(.defective, last: false, continues: true)) == .nextSegment)
        // Not when the successor does not continue exactly: that is damage, stopped here.
        #expect(!D.needsOwnFrameSearch(.defective, inLastSegment: false, successorContinues: false))
        #expect(isStop(D.step(finding(.defective, last: false, continues: false))))
    }

    // Row: zeros or older contents in a non-last segment with an intact frame of its own after them -> stop.
    @Test func ownFramesAfterAClosedSegmentsEndStopTheScan() {
        for p in [D.Position.zeros, .olderFrame, .defective] {
            #expect(D.step(finding(p, last: false, continues: true, ownAfter: true))
                    == .stop(.framesAfterEndOfData, reason: "frames of this segment after the end of its data"))
        }
    }

    // Row: intact frame of an earlier segment id for LSNs before E, in the last segment -> clean end.
    @Test func olderContentsAtTheLastSegmentsEndAreACleanEnd() {
        #expect(D.step(finding(.olderFrame, last: true)) == .stop(.endOfData, reason: "end of data (older contents of a recycled segment)"))
        #expect(!D.needsOwnFrameSearch(.olderFrame, inLastSegment: true, successorContinues: false))
        // The older frames are not "bytes after" (the caller excludes them): a clean end.
        #expect(D.outcome(expected: e, laterWatermark: .none, bytesAfter: false) == .cleanEnd)
    }

    // Salvage: patch up to the next own frame, or to the segment's end when the successor starts after E;
    // cut when the span cannot be bounded.
    @Test func salvagePatchesABoundedSpanAndCutsOtherwise() {
        let next = D.salvageSpan(stopOffset: 4096, expected: e, segmentHeaderIntact: true,
                                 nextOwnFrame: (4800, LSN(104)), segmentEnd: 65536, successorFirstLSN: LSN(200))
        #expect(next?.end == 4800 && next?.endLSN == LSN(104))
        let toEnd = D.salvageSpan(stopOffset: 4096, expected: e, segmentHeaderIntact: true, nextOwnFrame: nil,
                                  segmentEnd: 65536, successorFirstLSN: LSN(130))
        #expect(toEnd?.end == 65536 && toEnd?.endLSN == LSN(130))
        // The last segment with nothing of its own after the damage, a successor that does not start later,
        // and a span too small for a frame header: cut.
        #expect(D.salvageSpan(stopOffset: 4096, expected: e, segmentHeaderIntact: true, nextOwnFrame: nil,
                              segmentEnd: 65536, successorFirstLSN: nil) == nil)
        #expect(D.salvageSpan(stopOffset: 4096, expected: e, segmentHeaderIntact: true, nextOwnFrame: nil,
                              segmentEnd: 65536, successorFirstLSN: e) == nil)
        #expect(D.salvageSpan(stopOffset: 4096, expected: e, segmentHeaderIntact: true,
                              nextOwnFrame: (4120, LSN(101)), segmentEnd: 65536, successorFirstLSN: nil) == nil)
    }
}
