import NodeWire
@testable import queue_chaos
import Testing

/// The chaos campaign's checker, on histories made by hand: a checker that missed a loss, counted a
/// redelivery as a duplicate or took an indeterminate message for an unexpected one would make every
/// campaign's verdict worthless.
@Suite struct CheckerTests {
    @Test func eachKindOfViolationIsFoundAndNothingElse() {
        let history = History()
        let sent = ContinuousClock.now
        for body in ["p0-1", "p0-2", "p0-3", "p0-4", "p0-5", "p0-6"] { history.attempted(body) }
        history.confirmed("p0-1", sent: sent)
        history.confirmed("p0-2", sent: sent)   // never delivered: lost
        history.indeterminate("p0-3")            // delivered or not, both allowed
        history.refused("p0-4")                  // only ever refused, yet delivered: unexpected
        history.confirmed("p0-5", sent: sent)   // delivered under two ids: stored twice
        history.indeterminate("p0-6")
        history.confirmed("p0-6", sent: sent)   // settled by a resend
        let drained = [
            DrainedMessage(id: 1, body: "p0-1"), DrainedMessage(id: 1, body: "p0-1"),  // a redelivery, not a duplicate
            DrainedMessage(id: 3, body: "p0-3"), DrainedMessage(id: 4, body: "p0-4"),
            DrainedMessage(id: 5, body: "p0-5"), DrainedMessage(id: 7, body: "p0-5"),
            DrainedMessage(id: 6, body: "p0-6"), DrainedMessage(id: 9, body: "p9-1"),  // never sent: unexpected
        ]
        let verdict = Verdict(history: history, consumed: [], drained: drained, epochRegressions: [])
        #expect(verdict.lost == ["p0-2"])
        #expect(verdict.duplicated == ["p0-5"])
        #expect(verdict.unexpected == ["p0-4", "p9-1"])
        #expect(verdict.attempted == 6)
        #expect(verdict.confirmed == 4)
        #expect(verdict.indeterminate == 2)
        #expect(verdict.indeterminateRecovered == 1)
        #expect(verdict.unsettled == 2)
        #expect(verdict.violated)
        #expect(!verdict.passed)
    }

    @Test func consumersDeliveriesCountAsDeliveredAndAConfirmedAckMustNotComeBack() {
        let history = History()
        for body in ["p0-1", "p0-2", "p0-3"] {
            history.attempted(body)
            history.confirmed(body, sent: .now)
        }
        // p0-1 taken and its ack confirmed during the faults: not in the drain, and not lost. p0-2 delivered
        // and its ack not confirmed: delivered again, allowed. p0-3 acked, then delivered again: the ack lost.
        let consumed: [Deliveries.Event] = [
            .delivered(id: 1, body: "p0-1"), .acked(id: 1),
            .delivered(id: 2, body: "p0-2"),
            .delivered(id: 3, body: "p0-3"), .acked(id: 3),
            .delivered(id: 2, body: "p0-2"),
        ]
        let drained = [DrainedMessage(id: 2, body: "p0-2"), DrainedMessage(id: 3, body: "p0-3")]
        let verdict = Verdict(history: history, consumed: consumed, drained: drained, epochRegressions: [])
        #expect(verdict.lost.isEmpty)
        #expect(verdict.duplicated.isEmpty)
        #expect(verdict.redeliveredAfterAck == ["p0-3 (id 3)"])
        #expect(verdict.redelivered == 3)
        #expect(verdict.consumedDuringFaults == 4)
        #expect(verdict.ackedDuringFaults == 2)
        #expect(verdict.violated)

        // Without the late delivery of p0-3 it passes; without the consumers' record, p0-1 is lost.
        let clean = Verdict(history: history, consumed: Array(consumed.prefix(5)), drained: [DrainedMessage(id: 2, body: "p0-2")],
                            epochRegressions: [])
        #expect(clean.passed)
        let forgotten = Verdict(history: history, consumed: [], drained: [DrainedMessage(id: 2, body: "p0-2")],
                                epochRegressions: [])
        #expect(forgotten.lost == ["p0-1", "p0-3"])
    }

    @Test func aCleanHistoryPassesAndAnUndrainedQueueIsNotAPass() {
        let history = History()
        history.attempted("p0-1")
        history.confirmed("p0-1", sent: .now)
        let clean = Verdict(history: history, consumed: [], drained: [DrainedMessage(id: 1, body: "p0-1")], epochRegressions: [])
        #expect(clean.passed)
        let undrained = Verdict(history: history, consumed: [], drained: nil, epochRegressions: [])
        #expect(!undrained.deliveriesChecked)
        #expect(!undrained.violated)
        #expect(!undrained.passed)
        #expect(undrained.lost.isEmpty, "not drained is not lost")
    }

    @Test func anomaliesAndEpochsGoingBackFailTheVerdict() {
        let history = History()
        history.anomaly("p0-2: outOfSequence")
        let verdict = Verdict(history: history, consumed: [], drained: [], epochRegressions: ["a reported epoch 3 after 4"])
        #expect(verdict.anomalies == ["p0-2: outOfSequence", "a reported epoch 3 after 4"])
        #expect(verdict.violated)
    }

    @Test func theLongestGapWithoutConfirmsSpansTheWindow() {
        let history = History()
        let start = ContinuousClock.now
        history.attempted("p0-1")
        history.confirmed("p0-1", sent: start)
        let gap = history.longestGapWithoutConfirms(from: start - .seconds(2), to: start + .seconds(5))
        #expect(gap >= .seconds(2) && gap <= .seconds(5) + .milliseconds(100))
        #expect(history.longestGapWithoutConfirms(from: start + .seconds(1), to: start + .seconds(3)) == .seconds(2))
    }
}

/// The test clients' protocol: every request and reply survives a line, and a line is one line.
@Suite struct NodeWireTests {
    @Test func requestsAndRepliesRoundTripAsOneLineEach() throws {
        let requests: [NodeRequest] = [
            .status, .declareQueue(name: "q"), .registerProducer(name: "p0"),
            .publish(producer: 7, epoch: 2, queue: "q", sequence: 9, body: "p0-9 \"quoted\"\nnewline"),
            .drain(queue: "q", idleMilliseconds: 1000, limit: 500), .consume(queue: "q", idleMilliseconds: 500), .ack(tag: 12),
        ]
        for request in requests {
            let line = NodeLine.encode(request)
            #expect(line.last == UInt8(ascii: "\n"))
            #expect(line.dropLast().contains(UInt8(ascii: "\n")) == false)
            #expect(try NodeLine.decode(NodeRequest.self, from: line.dropLast()) == request)
        }
        let replies: [NodeReply] = [
            .status(role: "follower", epoch: 3, leader: "a", replica: "b#7", inSync: nil),
            .status(role: "leader", epoch: 3, leader: nil, replica: "a#5", inSync: ["a#5", "b#7"]), .done, .registered(producer: 7, epoch: 2),
            .stored(id: 11), .duplicate, .messages([DrainedMessage(id: 1, body: "x")]),
            .failed(code: "notLeader", message: "no", leaderHint: "b"), .delivered(id: 4, body: "p1-2", tag: 12),
            .acked(id: 4),
        ]
        for reply in replies {
            let line = NodeLine.encode(reply)
            #expect(try NodeLine.decode(NodeReply.self, from: line.dropLast()) == reply)
        }
    }
}
