import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// A follower that holds a tail its new leader never had (the old leader's last frames) cuts it where the
/// epoch exchange says, durably, and then continues byte for byte from its new leader.
@Suite(.serialized, .timeLimit(.minutes(5))) struct TailCutTests {
    /// Leader A (epoch 1) and follower F share 120 records; A then writes 60 more that F takes; B, a copy
    /// of A from before those 60, becomes leader with epoch 2 and writes 70 of its own. Returns the three
    /// directories' logs open (A closed), and where epoch 1 ends in B's log.
    struct Divergence {
        let dir = TemporaryDirectory()
        var b: WriteAheadLog!
        var f: WriteAheadLog!
        var epoch1EndsAt = LSN.none
        var committed = LSN.none
    }

    static let options = smallOptions(segmentBytes: 1 << 16)

    func diverge() async throws -> Divergence {
        var d = Divergence()
        var aOptions = Self.options
        aOptions.leaderEpoch = 1
        var a = try WriteAheadLog.open(directory: d.dir.sub("a"), options: aOptions)
        var f = try WriteAheadLog.open(directory: d.dir.sub("f"), options: replicaOptions(of: a, Self.options))
        for i in 0..<120 { _ = try await a.append(testRecord(1, i)) }
        var shipper = try InProcessShipper(leader: a, follower: f, epoch: 1)
        try await shipper.shipAll()
        d.committed = f.durableLSN
        try a.close()
        try FileManager.default.copyItem(atPath: d.dir.sub("a"), toPath: d.dir.sub("b"))
        a = try WriteAheadLog.open(directory: d.dir.sub("a"), options: aOptions)
        for i in 0..<60 { _ = try await a.append(testRecord(2, i)) }
        shipper = InProcessShipper(leader: a, follower: f, epoch: 1, position: shipper.position)
        try await shipper.shipAll()
        #expect(f.durableLSN == LSN(180))
        try a.close()
        var bOptions = Self.options
        bOptions.leaderEpoch = 2
        let b = try WriteAheadLog.open(directory: d.dir.sub("b"), options: bOptions)
        d.epoch1EndsAt = b.durableLSN.next
        for i in 0..<70 { _ = try await b.append(testRecord(3, i)) }
        d.b = b
        try f.close()
        f = try WriteAheadLog.open(directory: d.dir.sub("f"), options: replicaOptions(of: b, Self.options))
        d.f = f
        return d
    }

    @Test func aCutFollowerContinuesFromItsNewLeaderByteForByte() async throws {
        let d = try await diverge()
        #expect(d.epoch1EndsAt == LSN(121))
        // Where the epoch exchange would cut (both histories: epoch 1 from LSN 1, B's epoch 2 from 121).
        var history = EpochHistory()
        try history.begin(epoch: 1, at: .first)
        var leaderHistory = history
        try leaderHistory.begin(epoch: 2, at: d.epoch1EndsAt)
        let cut = EpochHistory.truncationPoint(leader: leaderHistory, leaderEnd: d.b.durableLSN.next,
                                               replica: history, replicaEnd: d.f.durableLSN.next)
        #expect(cut == d.epoch1EndsAt)
        try d.f.closeCuttingTail(from: cut, committed: d.committed)
        let f = try WriteAheadLog.open(directory: d.dir.sub("f"), options: replicaOptions(of: d.b, Self.options))
        #expect(f.durableLSN == cut.previous)
        do { _ = try f.read(cut); Issue.record("a cut record was served") } catch { #expect(error.code == .lsnOutOfRange) }
        var shipper = try InProcessShipper(leader: d.b, follower: f, epoch: 2)
        try await shipper.shipAll()
        #expect(f.durableLSN == d.b.durableLSN)
        var differing = 0
        try f.forEachRecord(from: .first) { lsn, bytes in
            if (try? d.b.read(lsn)) != Array(bytes) { differing += 1 }
            return true
        }
        #expect(differing == 0)
        try f.close()
        try d.b.close()
        expectSegmentsIdentical(leader: d.dir.sub("b"), follower: d.dir.sub("f"))
    }

    @Test func aCutBelowTheCommittedLSNOrInsideAFrameIsRefusedAndChangesNothing() async throws {
        let d = try await diverge()
        do { try d.f.closeCuttingTail(from: d.committed, committed: d.committed); Issue.record("cut a committed record") }
        catch { #expect(error.code == .invalidArgument) }
        #expect(!d.f.isClosed)
        // A frame of several records: cutting inside it is refused.
        let frame = try #require(d.f.recordsInFrame(containing: LSN(150)))
        if frame.upperBound.rawValue - frame.lowerBound.rawValue > 1 {
            do { try d.f.closeCuttingTail(from: frame.lowerBound + 1, committed: d.committed); Issue.record("cut inside a frame") }
            catch { #expect(error.code == .invalidArgument) }
        }
        #expect(d.f.durableLSN == LSN(180))
        try d.f.close()
        try d.b.close()
    }

    /// A power cut at every operation of the cut leaves a log that ends at the cut or later, with the shared
    /// prefix intact; cutting again then ends it exactly there.
    @Test func aPowerCutDuringTheCutLeavesALogThatEndsAtTheCutOrLater() async throws {
        let opts = PowerLossTrial.defaultOptions
        var leaderOptions = opts
        leaderOptions.leaderEpoch = 1
        // Build a follower log of 5 segments on a simulated disk, then cut it back to inside its second.
        func build() async throws -> (SimulatedDisk, WriteAheadLog, LSN, [LSN: [UInt8]]) {
            let leaderDisk = SimulatedDisk(), disk = SimulatedDisk()
            let leader = try WriteAheadLog.open(directory: "/sim/leader", options: leaderOptions, fileSystem: leaderDisk)
            let follower = try WriteAheadLog.open(directory: "/sim/f", options: replicaOptions(of: leader, opts), fileSystem: disk)
            var kept: [LSN: [UInt8]] = [:]
            for i in 0..<300 {
                let record = PowerLossTrial.record(seed: 5, stream: 0, index: i)
                let lsn = try await leader.append(record)
                kept[lsn] = record
            }
            var shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 1)
            try await shipper.shipAll(maxBytes: 6 << 10)
            let second = leader.segments[1]
            let cut = try #require(leader.recordsInFrame(containing: second.firstLSN + 10)).lowerBound
            try leader.close()
            return (disk, follower, cut, kept.filter { $0.key < cut })
        }
        let (probe, probeLog, probeCut, _) = try await build()
        let before = probe.operations
        try probeLog.closeCuttingTail(from: probeCut, committed: probeCut.previous)
        let operations = probe.operations - before
        #expect(operations >= 4, "segments removed, directory synced, the tail zeroed and synced")
        for point in 0...operations {
            let (disk, follower, cut, kept) = try await build()
            disk.crash(beforeOperation: disk.operations + point)
            try? follower.closeCuttingTail(from: cut, committed: cut.previous)
            disk.crash()
            let image = disk.crashImage(seed: UInt64(point))
            var log = try WriteAheadLog.open(directory: "/sim/f", options: replicaOptions(of: nil, opts), fileSystem: image)
            #expect(log.durableLSN >= cut.previous, "crash before operation \(point) of the cut")
            for (lsn, record) in kept { #expect(try log.read(lsn) == record) }
            try log.closeCuttingTail(from: cut, committed: cut.previous)
            log = try WriteAheadLog.open(directory: "/sim/f", options: replicaOptions(of: nil, opts), fileSystem: image)
            #expect(log.durableLSN == cut.previous)
            try log.close()
        }
    }
}
