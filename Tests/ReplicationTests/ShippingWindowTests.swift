import DurableLog
import LogFormat
import Synchronization
import Testing
@testable import Replication

/// A leader ships at most its window of frames a follower has not acknowledged (backpressure, not an unbounded
/// queue on the connection), and ships more as acknowledgements come.
@Suite(.timeLimit(.minutes(2))) struct ShippingWindowTests {
    private final class Wire: Sendable {
        let runs = Mutex<[(bytes: Int, end: LSN)]>([])
        func send(_ message: ReplicationMessage) {
            guard case .frames(let frames, _) = message,
                  let verified = try? frames.verify(segmentBytes: testOptions.segmentBytes) else { return }
            runs.withLock { $0.append((frames.bytes.count, verified.endLSN)) }
        }
        var shippedBytes: Int { runs.withLock { $0.reduce(0) { $0 + $1.bytes } } }
    }

    @Test func aFollowerThatNeverAcknowledgesGetsNoMoreThanTheWindow() async throws {
        let dir = TemporaryDirectory()
        let follower = Node(name: "beta", directory: dir.sub("beta"))
        // Room for every record unconfirmed: the window, not the pending buffer, is what holds shipping back.
        var options = testOptions
        options.pendingBytesMax = 1 << 20
        let leader = try TestLeader(node: Node(name: "alpha", directory: dir.sub("alpha")), epoch: 1,
                                    inSync: [follower.identity], options: options)
        let wire = Wire()
        let session = leader.session(send: wire.send)  // window 16 KiB, runs of at most 6 KiB
        session.receive(.hello(.init(log: leader.log.identity, member: "beta", incarnation: 1, lastEpoch: nil,
                                     end: .first)))
        session.receive(.follow(from: .first))

        // 200 records of 200 to 1,700 bytes (about 190 KB, several times the window): their confirms wait for the follower, which never
        // acknowledges, so they are left to end with the log.
        let writers = (0..<200).map { i in Task { _ = try? await leader.log.append(record(i % 4, i)) } }
        try await eventually { leader.log.durableLSN >= LSN(200) }
        session.pump()
        #expect(wire.shippedBytes <= (16 << 10) + (6 << 10), "\(wire.shippedBytes) bytes shipped unacknowledged")
        #expect(wire.shippedBytes >= 16 << 10, "the window was not filled")

        // Acknowledgements free room, and the next runs follow: all but the last run acknowledged leaves less
        // than the window in flight (one small run acknowledged may not: the last run may overshoot the window).
        let runs = wire.runs.withLock { $0 }
        let before = runs.count
        #expect(before >= 2)
        session.receive(.durable(through: runs[before - 2].end))
        #expect(wire.runs.withLock { $0.count } > before)
        #expect(leader.log.committedLSN < LSN(200), "nothing the follower lacks was committed")

        try leader.log.close()
        for w in writers { await w.value }
    }
}
