import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// A follower's frames carry its leader's committed watermark, which vouches for records the follower itself
/// synced only if it was in the in-sync set when the leader wrote them. A follower catching up outside it takes
/// a frame and a later frame that vouches for it in one unsynced group; a power loss can keep the later one and
/// tear the first. Its recovery cannot tell that from damage to records it acknowledged, so it cuts (into
/// quarantine) and leaves the marker that makes it rejoin as a new replica. A leader's log with the same bytes
/// is refused: there the watermark is its own.
@Suite(.timeLimit(.minutes(5))) struct ReplicaRecoveryTests {
    @Test func aDamagedFrameALaterFrameVouchesForIsCutOnAReplicaAndRefusedElsewhere() async throws {
        let dir = TemporaryDirectory()
        var leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 0..<6 { _ = try await leader.append(testRecord(1, i)) }  // one group each: frame k vouches for k-1
        let follower = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader))
        var shipper = try InProcessShipper(leader: leader, follower: follower, epoch: 0)
        try await shipper.shipAll()
        try follower.close()
        let segment = try #require(segmentPaths(dir.sub("follower")).first)
        let frames = frameOffsets(segment)
        #expect(frames.count == 6)
        #expect(frames[3].header.durableLSN >= LSN(1), "a later frame vouches for the first")
        patchFile(segment, at: frames[0].offset + FrameHeader.encodedBytes + 2, [0xA5, 0x5A])

        var asLeader = smallOptions()
        asLeader.identity = leader.identity
        do {
            try WriteAheadLog.open(directory: dir.sub("follower"), options: asLeader).close()
            Issue.record("a leader's log opened over damage its own watermark vouches for")
        } catch {
            #expect(error.code == .corruption)
            #expect(error.offset == frames[0].offset)
        }
        #expect(try !ReplicaRejoinMarker.isPresent(directory: dir.sub("follower"), fileSystem: PosixFileSystem()),
                "a refused open leaves no marker")

        let reopened = try WriteAheadLog.open(directory: dir.sub("follower"), options: replicaOptions(of: leader))
        let cut = try #require(reopened.recoveryReport.replicaCut)
        #expect(cut.firstLostLSN == 1)
        #expect(cut.laterWatermark >= 1)
        #expect(cut.offset == frames[0].offset)
        #expect(reopened.recoveryReport.tornTail == nil)
        #expect(reopened.durableLSN == .none, "nothing before the damaged frame")
        #expect(try ReplicaRejoinMarker.isPresent(directory: dir.sub("follower"), fileSystem: PosixFileSystem()))
        let quarantine = try FileManager.default.contentsOfDirectory(atPath: dir.sub("follower") + "/quarantine")
        #expect(quarantine.count == 1, "the cut bytes are kept")

        // It fetches everything again and ends byte for byte its leader's.
        try leader.close()
        leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 6..<9 { _ = try await leader.append(testRecord(1, i)) }
        shipper = try InProcessShipper(leader: leader, follower: reopened, epoch: 0)
        try await shipper.shipAll()
        #expect(reopened.durableLSN == leader.durableLSN)
        try leader.close()
        try reopened.close()
        expectSegmentsIdentical(leader: dir.sub("leader"), follower: dir.sub("follower"))
    }
}
