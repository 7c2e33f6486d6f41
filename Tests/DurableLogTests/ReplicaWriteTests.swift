import Foundation
import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import DurableLog

/// Ships a leader's frames to one follower inside the test, the way the replication stream will: from the
/// follower's position, run by run, each run durable on the follower before the next; the follower's durable
/// end goes back to a replicated leader as its in-sync replicas' report.
struct InProcessShipper {
    let leader: WriteAheadLog
    let follower: WriteAheadLog
    var epoch: UInt64
    var position: ShipPosition
    var runs = 0
    /// The LSN after the last record the follower acknowledged.
    var acknowledged = LSN.first

    init(leader: WriteAheadLog, follower: WriteAheadLog, epoch: UInt64) throws {
        self.leader = leader
        self.follower = follower
        self.epoch = epoch
        position = try leader.shipPosition(for: follower.durableLSN.next)
    }

    /// Goes on from `position` (a follower that stays connected while its leader changes logs).
    init(leader: WriteAheadLog, follower: WriteAheadLog, epoch: UInt64, position: ShipPosition) {
        self.leader = leader
        self.follower = follower
        self.epoch = epoch
        self.position = position
    }

    /// Ships one run; false when the leader has nothing past the follower yet.
    mutating func shipOne(maxBytes: Int = 24 << 10) async throws -> Bool {
        guard let run = try leader.framesToShip(from: position, maxBytes: maxBytes) else { return false }
        let end = try await follower.acceptShipped(run, leaderEpoch: epoch)
        position = run.end
        runs += 1
        acknowledged = max(acknowledged, end)
        if leader.options.confirmsWaitForReplicas { leader.replicasDurable(through: end.previous) }
        return true
    }

    mutating func shipAll(maxBytes: Int = 24 << 10) async throws {
        while try await shipOne(maxBytes: maxBytes) {}
    }
}

/// A follower's options: its leader's identity, taking shipped frames only.
func replicaOptions(of leader: WriteAheadLog?, _ base: LogOptions = smallOptions()) -> LogOptions {
    var o = base
    o.isReplica = true
    o.identity = leader?.identity
    return o
}

/// The follower's segment files are its leader's, byte for byte through each one's last frame of records.
func expectSegmentsIdentical(leader: String, follower: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let difference = replicaSegmentsDiffer(leader: leader, follower: follower)
    #expect(difference == nil, sourceLocation: sourceLocation)
}

/// A run of hand-made frames (raw payloads) in segment 1, for the follower's checks.
func handMadeFrames(segmentID: SegmentID = SegmentID(1), offset: Int = SegmentHeader.blockBytes, firstLSN: LSN,
                    recordsPerFrame: [Int], epochs: [UInt64]? = nil, kind: FrameHeader.Kind = .records) -> ShippedFrames {
    var bytes: [UInt8] = []
    var lsn = firstLSN
    for (i, count) in recordsPerFrame.enumerated() {
        var payload: [UInt8] = []
        for r in 0..<count { testRecord(7, Int(lsn.rawValue) + r, size: 40).withUnsafeBytes { BatchPayload.append($0, to: &payload) } }
        var frame = [UInt8](repeating: 0, count: FrameEncoder.scratchBytesMax(payloadBytes: payload.count))
        let header = payload.withUnsafeBytes { p in
            frame.withUnsafeMutableBytes { out in
                FrameEncoder.encode(payload: p, recordCount: count, kind: kind, segmentID: segmentID, firstLSN: lsn,
                                    durableLSN: .none, leaderEpoch: epochs?[i] ?? 1, compression: .none, into: out)
            }
        }
        bytes += frame.prefix(header.frameBytes)
        lsn = lsn + UInt64(count)
    }
    return ShippedFrames(segmentID: segmentID, offset: offset, bytes: bytes)
}

@Suite(.timeLimit(.minutes(5))) struct ReplicaWriteTests {
    @Test func aFollowerHoldsTheLeadersSegmentsByteForByteAcrossRollsAndALeaderRestart() async throws {
        let dir = TemporaryDirectory()
        var leaderOptions = smallOptions(segmentBytes: 1 << 16)
        leaderOptions.leaderEpoch = 3
        let first = try WriteAheadLog.open(directory: dir.sub("leader"), options: leaderOptions)
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"),
                                              options: replicaOptions(of: first, smallOptions(segmentBytes: 1 << 16)))
        // Groups of several records from eight tasks, enough to roll the 64 KiB segments several times.
        await withTaskGroup(of: Void.self) { group in
            for s in 0..<8 {
                group.addTask { for i in 0..<150 { _ = try? await first.append(testRecord(s, i)) } }
            }
        }
        var leader = first
        var shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 3)
        try await shipper.shipAll()
        #expect(follower.durableLSN == leader.durableLSN)
        #expect(leader.segments.count >= 3)
        #expect(shipper.runs > leader.segments.count, "runs are cut at maxBytes, not only at segment ends")

        // The leader restarts (its close writes a seal) and goes on under a new epoch: the follower takes the
        // seal too and stays identical.
        try leader.close()
        leaderOptions.leaderEpoch = 4
        leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: leaderOptions)
        for i in 0..<40 { _ = try await leader.append(testRecord(9, i)) }
        shipper = InProcessShipper(leader: leader, follower: follower, epoch: 4, position: shipper.position)
        try await shipper.shipAll()
        #expect(follower.durableLSN == leader.durableLSN)
        var records = 0
        try follower.forEachRecord(from: .first) { lsn, bytes in
            records += 1
            return (try? leader.read(lsn)) == Array(bytes)
        }
        #expect(records == 8 * 150 + 40)
        try leader.close()
        try follower.close()
        expectSegmentsIdentical(leader: dir.sub("leader"), follower: dir.sub("follower"))
    }

    @Test func aFollowerReopenedGoesOnWhereItsFramesEnd() async throws {
        let dir = TemporaryDirectory()
        let leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 0..<300 { _ = try await leader.append(testRecord(1, i)) }
        var follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader))
        var shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 0)
        for _ in 0..<5 { _ = try await shipper.shipOne() }
        let shipped = follower.durableLSN
        try follower.close()
        follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader))
        #expect(follower.durableLSN == shipped)
        #expect(follower.recoveryReport.cleanShutdown == false, "a follower writes no seal of its own")
        shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 0)
        try await shipper.shipAll()
        #expect(follower.durableLSN == leader.durableLSN)
        try leader.close()
        try follower.close()
        expectSegmentsIdentical(leader: dir.sub("leader"), follower: dir.sub("follower"))
    }

    @Test func aFollowerRefusesAnAppendOfItsOwnAndALeaderRefusesShippedFrames() async throws {
        let dir = TemporaryDirectory()
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: nil))
        let leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        do { _ = try await follower.append(testRecord(1, 1)); Issue.record("a follower appended a record of its own") }
        catch { #expect(error.code == .invalidArgument) }
        do {
            _ = try await leader.acceptShipped(handMadeFrames(firstLSN: .first, recordsPerFrame: [1]), leaderEpoch: 1)
            Issue.record("a leader took shipped frames")
        } catch { #expect(error.code == .invalidArgument) }
        try follower.close()
        try leader.close()
    }

    /// Every check a follower makes before writing a byte, each with its exact code; after each refusal the
    /// log is untouched and takes the right run.
    @Test func aFollowerRefusesRunsThatAreDamagedOrDoNotContinueItsLog() async throws {
        let dir = TemporaryDirectory()
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: nil))
        let good = handMadeFrames(firstLSN: .first, recordsPerFrame: [3, 2], epochs: [1, 2])
        func refusal(_ run: ShippedFrames, epoch: UInt64 = 2) async -> WALError.Code? {
            do { _ = try await follower.acceptShipped(run, leaderEpoch: epoch); return nil } catch { return error.code }
        }
        var flipped = good
        flipped.bytes[FrameHeader.encodedBytes + 5] ^= 0x40
        #expect(await refusal(flipped) == .invalidArgument, "a payload byte flipped in transit")
        var cut = good
        cut.bytes.removeLast(8)
        #expect(await refusal(cut) == .invalidArgument, "a run cut inside its last frame")
        var trailing = good
        trailing.bytes += [UInt8](repeating: 0, count: 8)
        #expect(await refusal(trailing) == .invalidArgument, "zeros after the last frame")
        #expect(await refusal(ShippedFrames(segmentID: SegmentID(1), offset: 4096 + 8, bytes: good.bytes)) == .invalidArgument,
                "frames at another offset than where the log's frames end")
        #expect(await refusal(ShippedFrames(segmentID: SegmentID(1), offset: Int.max - 7, bytes: good.bytes)) == .invalidArgument,
                "an offset a corrupt or hostile peer could send, refused rather than overflowing")
        #expect(await refusal(handMadeFrames(segmentID: SegmentID(3), firstLSN: .first, recordsPerFrame: [1])) == .invalidArgument,
                "frames of a segment after the next")
        #expect(await refusal(ShippedFrames(segmentID: SegmentID(2), offset: 4096, bytes: good.bytes)) == .invalidArgument,
                "frames naming another segment than the run's")
        #expect(await refusal(handMadeFrames(firstLSN: LSN(2), recordsPerFrame: [1])) == .invalidArgument,
                "frames that skip an LSN")
        #expect(await refusal(handMadeFrames(firstLSN: .first, recordsPerFrame: [1, 1], epochs: [2, 1])) == .invalidArgument,
                "an epoch going back inside a run")
        #expect(await refusal(good, epoch: 1) == .staleEpoch, "a frame newer than the leader the follower accepted")
        #expect(follower.durableLSN == .none)
        #expect(try await follower.acceptShipped(good, leaderEpoch: 2) == LSN(6))
        // The log's last frame has epoch 2: a run of epoch 1 after it is a deposed leader's.
        let older = handMadeFrames(offset: good.end.offset, firstLSN: LSN(6), recordsPerFrame: [1], epochs: [1])
        #expect(await refusal(older, epoch: 2) == .staleEpoch)
        try follower.close()
        // The epoch of the last frame survives a reopen.
        let reopened = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: nil))
        do { _ = try await reopened.acceptShipped(older, leaderEpoch: 2); Issue.record("accepted an older epoch") }
        catch { #expect(error.code == .staleEpoch) }
        #expect(try await reopened.acceptShipped(
            handMadeFrames(offset: good.end.offset, firstLSN: LSN(6), recordsPerFrame: [1], epochs: [2]), leaderEpoch: 2) == LSN(7))
        try reopened.close()
    }

    @Test func runsThatArriveDuringASyncShareTheNextOne() async throws {
        let dir = TemporaryDirectory()
        let leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 0..<200 { _ = try await leader.append(testRecord(2, i, size: 300)) }
        let disk = FaultInjectingFileSystem()
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader), fileSystem: disk)
        var runs: [ShippedFrames] = []
        var position = try leader.shipPosition(for: .first)
        while let run = try leader.framesToShip(from: position, maxBytes: 4096) {
            runs.append(run)
            position = run.end
        }
        #expect(runs.count >= 10)
        disk.holdSyncs(pathSuffix: ".wal")
        let completed = Mutex<[LSN]>([])
        let each = DispatchSemaphore(value: 0)
        #expect(try follower.acceptShipped(runs[0], leaderEpoch: 0) { result in
            if case .success(let lsn) = result { completed.withLock { $0.append(lsn) } }
            each.signal()
        })
        #expect(disk.waitForHeldSync(seconds: 10), "the first run's sync starts")
        for run in runs.dropFirst() {
            #expect(try follower.acceptShipped(run, leaderEpoch: 0) { result in
                if case .success(let lsn) = result { completed.withLock { $0.append(lsn) } }
                each.signal()
            })
        }
        #expect(completed.withLock { $0.isEmpty }, "nothing is acknowledged before its sync returned")
        let syncsBefore = follower.counters.syncs
        disk.stopHoldingSyncs()
        disk.releaseSyncs()
        for _ in runs { #expect(each.wait(timeout: .now() + 10) == .success) }
        #expect(completed.withLock { $0 } == completed.withLock { $0 }.sorted(), "acknowledged in LSN order")
        #expect(completed.withLock { $0.count } == runs.count)
        #expect(follower.counters.syncs - syncsBefore <= 3, "the runs that waited share one sync (a roll may add one)")
        #expect(follower.durableLSN == leader.durableLSN)
        try follower.close()
        try leader.close()
    }

    @Test func aFailedSyncOnTheFollowerAcknowledgesNothingAndRefusesWhatFollows() async throws {
        let dir = TemporaryDirectory()
        let leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 0..<50 { _ = try await leader.append(testRecord(3, i)) }
        let disk = FaultInjectingFileSystem()
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader), fileSystem: disk)
        let first = try #require(try leader.framesToShip(from: leader.shipPosition(for: .first), maxBytes: 4096))
        disk.inject(.init(.dataSync, errno: Platform.Errno.ioError))
        do { _ = try await follower.acceptShipped(first, leaderEpoch: 0); Issue.record("acknowledged a failed sync") }
        catch { #expect(error.code == .ioFailure) }
        #expect(follower.durableLSN == .none)
        do { _ = try await follower.acceptShipped(first, leaderEpoch: 0); Issue.record("took frames after a failed sync") }
        catch { #expect(error.code == .logFailed) }
        do { try follower.close(); Issue.record("a failed log closed cleanly") } catch { #expect(error.code == .logFailed) }
        try leader.close()
    }
}
