import Dispatch
import Foundation
import DurableLog
import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import Replication

/// A layer's snapshots for tests: the leader offers fixed bytes (written to a file, `offered`, of its directory,
/// when asked for); a follower's install takes the received file and keeps its bytes in a small file (`state`)
/// of the follower's directory, on the file system given, as a store's checkpoint would be.
final class FileSnapshots: StateSnapshots {
    static let fileName = "state"
    static let offeredName = "offered"
    let directory: String
    let fileSystem: any FileSystem
    private let offered: Mutex<(bytes: [UInt8], covers: LSN)?>

    init(directory: String, fileSystem: any FileSystem = PosixFileSystem(), offering: (bytes: [UInt8], covers: LSN)? = nil) {
        self.directory = directory
        self.fileSystem = fileSystem
        offered = Mutex(offering)
    }

    func latest() throws(WALError) -> (file: ReadOnlyFile, covers: LSN)? {
        guard let offered = offered.withLock({ $0 }) else { return nil }
        try SmallFile.replace(offered.bytes, name: Self.offeredName, directory: directory, fileSystem: fileSystem)
        guard let file = try ReadOnlyFile.open("\(directory)/\(Self.offeredName)", fileSystem: fileSystem) else {
            throw WALError(.invalidLog, "the offered snapshot's file is gone")
        }
        return (file, offered.covers)
    }

    /// Takes the file: its bytes go to the state file, and it is deleted.
    func install(file path: String, covers: LSN) throws(WALError) {
        guard let file = try ReadOnlyFile.open(path, fileSystem: fileSystem) else {
            throw WALError(.invalidLog, "no snapshot file at \(path)")
        }
        try keep(try file.read(at: 0, count: file.size), covers: covers)
        try fileSystem.remove(path)
        try fileSystem.syncDirectory(directory)
    }

    /// The state file holds the covered LSN (8 bytes) and then the bytes.
    func keep(_ bytes: [UInt8], covers: LSN) throws(WALError) {
        try SmallFile.replace(withUnsafeBytes(of: covers.rawValue.littleEndian) { Array($0) } + bytes, name: Self.fileName,
                              directory: directory, fileSystem: fileSystem)
    }

    /// What the last install left: the bytes and the LSN they cover.
    static func installed(in directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws -> (bytes: [UInt8], covers: LSN)? {
        guard let file = try SmallFile.read(name: fileName, directory: directory, fileSystem: fileSystem), file.count >= 8 else { return nil }
        let covers = file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        return (Array(file.dropFirst(8)), LSN(covers))
    }
}

/// A replica behind its leader's first segment (new, wiped, or away while the leader deleted what it lacks)
/// takes the leader's snapshot and then its frames from that segment on; an install a crash interrupts is
/// undone at the next start, never left as a log that does not match its state.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SnapshotCatchUpTests {
    /// A leader of epoch 4 whose log holds records of epoch 3 in several segments, the first ones deleted as
    /// a checkpoint would allow. (Written through a log of its own: a leader alone commits nothing.)
    func truncatedLeader(_ node: Node) async throws -> TestLeader {
        try PosixFileSystem().createDirectoryDurably(node.directory)
        var history = EpochHistory()
        try history.begin(epoch: 3, at: .first)
        try history.save(directory: node.directory)
        var options = testOptions
        options.leaderEpoch = 3
        let log = try WriteAheadLog.open(directory: node.directory, options: options)
        var i = 0
        while log.segments.count < 5 {
            _ = try await log.append(record(7, i))
            i += 1
        }
        try log.truncate(before: log.segments[2].firstLSN + 3)
        try log.close()
        return try TestLeader(node: node, epoch: 4, inSync: [])
    }

    func snapshotState(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }

    @Test func anEmptyReplicaInstallsTheSnapshotThenTakesTheLeadersFramesByteForByte() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try await truncatedLeader(nodes[0])
        let start = leader.log.start
        #expect(start.firstLSN > LSN(100))
        let state = snapshotState(1_000)
        let covers = start.firstLSN + 9  // a checkpoint covers some records of the first segment too
        let leaderSnapshots = FileSnapshots(directory: nodes[0].directory, offering: (state, covers))
        let session = LeaderSession(log: leader.log, history: leader.history, epoch: leader.epoch, tracker: leader.tracker,
                                    windowBytes: 16 << 10, runBytesMax: 6 << 10, snapshots: leaderSnapshots,
                                    snapshotPartBytes: 96, send: network.sender(0, toLeader: false))
        leader.sessions.withLock { $0.append(session) }
        network.attach(0, leader: session)

        var options = testOptions
        options.isReplica = true
        options.identity = leader.log.identity
        let log = try WriteAheadLog.open(directory: nodes[1].directory, options: options)
        let follower = try FollowerSession(
            log: log, configuration: .init(directory: nodes[1].directory, options: options, replica: nodes[1].identity,
                                           leaderEpoch: leader.epoch,
                                           snapshots: FileSnapshots(directory: nodes[1].directory)),
            send: network.sender(0, toLeader: true))
        network.attach(0, follower: follower)
        follower.start()

        let end = leader.log.durableLSN
        #expect(network.wait { follower.isFollowing && follower.log.durableLSN == end })
        #expect(follower.installs == 1)
        #expect(follower.ending == nil)
        #expect(follower.log.start == start)
        #expect(follower.committed >= covers)
        let installed = try #require(try FileSnapshots.installed(in: nodes[1].directory))
        #expect(installed.bytes == state)
        #expect(installed.covers == covers)
        #expect(follower.history.entries == [.init(epoch: 3, firstLSN: .first)], "the leader's, before its own epoch's first record")

        // It joins the in-sync set, and new records commit once it holds them.
        #expect(leader.tracker.join(nodes[1].identity))
        for i in 0..<40 { _ = try await leader.log.append(record(8, i)) }
        let later = leader.log.durableLSN
        #expect(network.wait { follower.log.durableLSN == later })
        for lsn in [start.firstLSN, later] { #expect(try follower.log.read(lsn) == leader.log.read(lsn)) }
        #expect(follower.history == leader.history)
        try follower.log.close()
        try leader.log.close()
        #expect(replicaSegmentsDiffer(leader: nodes[0].directory, follower: nodes[1].directory) == nil)

        // It opens again as a follower's log like any other, starting at the leader's first segment.
        let reopened = try WriteAheadLog.open(directory: nodes[1].directory, options: options)
        #expect(reopened.start == start)
        #expect(reopened.durableLSN == later)
        try reopened.close()
    }

    /// A snapshot leaves one part at a time, each once the transport has written the one before: a leader of a
    /// large store never holds every part in its buffers at once. A connection that fails stops the parts.
    @Test(arguments: [false, true])
    func theSnapshotsPartsLeaveOneAtATimeAsTheConnectionTakesThem(connectionFails: Bool) async throws {
        let dir = TemporaryDirectory()
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try await truncatedLeader(nodes[0])
        let state = snapshotState(1_000)
        let covers = leader.log.start.firstLSN
        // The transport: takes parts in turn; the third waits until the test lets it through (or fails).
        let taken = Mutex<[ReplicationMessage.SnapshotPart]>([])
        let atThird = DispatchSemaphore(value: 0), letThrough = DispatchSemaphore(value: 0)
        let session = LeaderSession(
            log: leader.log, history: leader.history, epoch: leader.epoch, tracker: leader.tracker,
            snapshots: FileSnapshots(directory: nodes[0].directory, offering: (state, covers)), snapshotPartBytes: 100,
            sendInTurn: { message in
                guard case .snapshot(let part) = message else { return true }
                let count = taken.withLock { $0.append(part); return $0.count }
                if count == 3 {
                    atThird.signal()
                    letThrough.wait()
                    return !connectionFails
                }
                return true
            },
            send: { message in
                if case .snapshot = message { Issue.record("a part went through send, without waiting its turn") }
            })
        session.receive(.hello(.init(log: leader.log.identity, member: nodes[1].name, incarnation: 1, lastEpoch: nil,
                                     end: .first)))
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            session.receive(.follow(from: .first))
            finished.signal()
        }
        #expect(atThird.wait(timeout: .now() + 30) == .success)
        #expect(taken.withLock { $0.count } == 3, "no part leaves before the one ahead of it was taken")
        letThrough.signal()
        #expect(finished.wait(timeout: .now() + 30) == .success)
        let parts = taken.withLock { $0 }
        if connectionFails {
            #expect(parts.count == 3, "nothing more is sent on a failed connection")
        } else {
            #expect(parts.map(\.offset) == (0..<10).map { UInt64($0 * 100) })
            #expect(parts.flatMap(\.bytes) == state)
            #expect(parts.allSatisfy { $0.totalBytes == 1_000 && $0.covers == covers })
        }
        try leader.log.close()
    }

    @Test func aReplicaBehindTheLeadersFirstSegmentIsRefusedWhenEitherSideHasNoSnapshots() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta", "gamma"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try await truncatedLeader(nodes[0])

        // The leader has none to send.
        _ = leader.session(on: network, connection: 0)
        let withoutLeaderSnapshot = try followerSession(nodes[1], of: leader, on: network, connection: 0)
        #expect(network.wait { withoutLeaderSnapshot.ending != nil })
        #expect(withoutLeaderSnapshot.ending.map { if case .refusedByLeader(.protocolViolation, _) = $0 { true } else { false } } == true)
        #expect(withoutLeaderSnapshot.log.durableLSN == .none, "nothing was taken")

        // The follower takes none.
        let session = LeaderSession(log: leader.log, history: leader.history, epoch: leader.epoch, tracker: leader.tracker,
                                    snapshots: FileSnapshots(directory: nodes[0].directory, offering: ([1, 2, 3], leader.log.start.firstLSN)),
                                    send: network.sender(1, toLeader: false))
        network.attach(1, leader: session)
        let withoutFollowerSnapshots = try followerSession(nodes[2], of: leader, on: network, connection: 1)
        #expect(network.wait { withoutFollowerSnapshots.ending != nil })
        #expect(withoutFollowerSnapshots.ending.map { if case .refused(.protocolViolation, _) = $0 { true } else { false } } == true)
        #expect(try FileSnapshots.installed(in: nodes[2].directory) == nil)
        for f in [withoutLeaderSnapshot, withoutFollowerSnapshots] { try f.log.close() }
        try leader.log.close()
    }

    /// A snapshot that covers less than the leader deleted is never sent: the follower would hold neither the
    /// records nor their effect.
    @Test func aSnapshotThatDoesNotCoverTheDeletedRecordsIsNotSent() async throws {
        let dir = TemporaryDirectory()
        let network = InMemoryNetwork()
        defer { network.stop() }
        let nodes = ["alpha", "beta"].map { Node(name: $0, directory: dir.sub($0)) }
        let leader = try await truncatedLeader(nodes[0])
        let stale = LSN(leader.log.start.firstLSN.rawValue - 2)
        let session = LeaderSession(log: leader.log, history: leader.history, epoch: leader.epoch, tracker: leader.tracker,
                                    snapshots: FileSnapshots(directory: nodes[0].directory, offering: ([9], stale)),
                                    send: network.sender(0, toLeader: false))
        network.attach(0, leader: session)
        var options = testOptions
        options.isReplica = true
        options.identity = leader.log.identity
        let follower = try FollowerSession(
            log: try WriteAheadLog.open(directory: nodes[1].directory, options: options),
            configuration: .init(directory: nodes[1].directory, options: options, replica: nodes[1].identity,
                                 leaderEpoch: leader.epoch, snapshots: FileSnapshots(directory: nodes[1].directory)),
            send: network.sender(0, toLeader: true))
        network.attach(0, follower: follower)
        follower.start()
        #expect(network.wait { follower.ending != nil })
        #expect(follower.installs == 0)
        #expect(try FileSnapshots.installed(in: nodes[1].directory) == nil)
        try follower.log.close()
        try leader.log.close()
    }

    /// A follower writes each part to the incoming file as it comes (the file holds exactly the bytes received
    /// so far: no part is held in memory); a new transfer's first part starts the file again; a replica's start
    /// deletes what a transfer cut short left; an install that fails deletes the file it could not take.
    @Test func partsGoToTheIncomingFileAsTheyComeAndNothingOfAnUnfinishedOneStays() throws {
        let dir = TemporaryDirectory()
        let directory = dir.sub("replica")
        try PosixFileSystem().createDirectoryDurably(directory)
        let incoming = "\(directory)/\(SnapshotInstall.incomingName)"
        let state = snapshotState(1_000)
        func part(_ offset: Int, _ count: Int, total: Int = 1_000) -> ReplicationMessage.SnapshotPart {
            .init(segmentID: SegmentID(3), firstLSN: LSN(200), covers: LSN(210), epochs: [], totalBytes: UInt64(total),
                  offset: UInt64(offset), bytes: Array(state[offset..<(offset + count)]))
        }
        for offset in stride(from: 0, to: 600, by: 200) {
            try SnapshotInstall.write(part(offset, 200), directory: directory, fileSystem: PosixFileSystem())
            #expect(FileManager.default.contents(atPath: incoming).map(Array.init) == Array(state[0..<(offset + 200)]))
        }
        // A new transfer (its first part) replaces what the last one left.
        try SnapshotInstall.write(part(0, 100, total: 100), directory: directory, fileSystem: PosixFileSystem())
        #expect(FileManager.default.contents(atPath: incoming).map(Array.init) == Array(state[0..<100]))
        // A start removes a transfer cut short.
        try SnapshotInstall.finishInterrupted(directory: directory)
        #expect(!FileManager.default.fileExists(atPath: incoming))
        // An install the layer refuses leaves no file behind (and the marker says the log was replaced).
        try SnapshotInstall.write(part(0, 1_000), directory: directory, fileSystem: PosixFileSystem())
        var options = testOptions
        options.isReplica = true
        options.identity = LogIdentity(high: 1, low: 2)
        let refused = #expect(throws: WALError.self) {
            try SnapshotInstall.install(part(0, 1_000), directory: directory, options: options,
                                        fileSystem: PosixFileSystem(), snapshots: RefusingSnapshots())
        }
        #expect(refused?.code == .corruption, "the layer's refusal, as it gave it")
        #expect(!FileManager.default.fileExists(atPath: incoming))
    }

    /// A leader reads the snapshot file it opened, even once a newer one is renamed over its name.
    @Test func aSnapshotBeingSentIsTheFileAsItWasOpened() throws {
        let dir = TemporaryDirectory()
        let directory = dir.sub("leader")
        try PosixFileSystem().createDirectoryDurably(directory)
        try SmallFile.replace(Array(repeating: 1, count: 5000), name: "checkpoint", directory: directory, fileSystem: PosixFileSystem())
        let file = try #require(try ReadOnlyFile.open("\(directory)/checkpoint", fileSystem: PosixFileSystem()))
        try SmallFile.replace(Array(repeating: 2, count: 10), name: "checkpoint", directory: directory, fileSystem: PosixFileSystem())
        #expect(file.size == 5000)
        #expect(try file.read(at: 4000, count: 1000) == Array(repeating: 1, count: 1000))
        #expect(try file.read(at: 4500, count: 1000) == Array(repeating: 1, count: 500), "short where the file ends")
        #expect(try ReadOnlyFile.open("\(directory)/missing", fileSystem: PosixFileSystem()) == nil)
    }

    /// Power cut before every file operation of an install, each crash image then started as a replica starts
    /// (`finishInterrupted`, then the log's open): the replica holds either its old log and state, untouched,
    /// or the new log start with the new state, or an empty log and a new incarnation to come. Never a log that
    /// starts at the leader's segment without the state that covers what comes before it.
    @Test(arguments: 0..<40)
    func anInstallCutByPowerLossLeavesTheOldReplicaTheNewOneOrAnEmptyOne(crashBefore: Int) throws {
        let directory = "/sim/follower"
        let disk = SimulatedDisk()
        var options = testOptions
        options.isReplica = true
        options.identity = LogIdentity(high: 5, low: 6)
        // The replica before: a log from LSN 1 (written as a leader would, then reopened as a follower's), and
        // an old state.
        var asWriter = options
        asWriter.isReplica = false
        asWriter.leaderEpoch = 2
        let written = try WriteAheadLog.open(directory: directory, options: asWriter, fileSystem: disk)
        for i in 0..<30 { _ = try record(9, i).withUnsafeBytes { try written.appendAndWait($0) } }
        try written.close()
        var oldHistory = EpochHistory()
        try oldHistory.begin(epoch: 2, at: .first)
        try oldHistory.save(directory: directory, fileSystem: disk)
        let snapshots = FileSnapshots(directory: directory, fileSystem: disk)
        try snapshots.keep([0xAA], covers: LSN(20))

        let part = ReplicationMessage.SnapshotPart(
            segmentID: SegmentID(6), firstLSN: LSN(500), covers: LSN(503),
            epochs: [.init(epoch: 2, firstLSN: .first), .init(epoch: 4, firstLSN: LSN(300))],
            totalBytes: 3, offset: 0, bytes: [1, 2, 3])
        try SnapshotInstall.write(part, directory: directory, fileSystem: disk)
        disk.crash(beforeOperation: disk.operations + crashBefore)
        let completed = (try? SnapshotInstall.install(part, directory: directory, options: options,
                                                      fileSystem: disk, snapshots: snapshots)) != nil
        // The cases run past the install's last operation, so that one of them completes it.
        if crashBefore == 39 { #expect(completed) }
        if crashBefore < 4 { #expect(!completed) }
        for seed in UInt64(0)..<6 {
            let image = disk.crashImage(seed: seed)
            try SnapshotInstall.finishInterrupted(directory: directory, fileSystem: image)
            #expect(try !image.list(directory).contains(SnapshotInstall.markerName))
            let log = try WriteAheadLog.open(directory: directory, options: options, fileSystem: image)
            defer { try? log.close() }
            let state = try FileSnapshots.installed(in: directory, fileSystem: image)
            let history = try EpochHistory.load(directory: directory, fileSystem: image)
            let context = "crash before operation \(crashBefore), image \(seed)"
            if log.start.firstLSN == part.firstLSN {
                #expect(log.start.segmentID == part.segmentID, "\(context)")
                #expect(log.durableLSN == LSN(499), "\(context)")
                #expect(state?.bytes == part.bytes && state?.covers == part.covers, "\(context): the new log without the new state")
                #expect(history.entries == part.epochs, "\(context)")
                #expect(try !ReplicaRejoinMarker.isPresent(directory: directory, fileSystem: image), "\(context)")
            } else if log.durableLSN == LSN(30) {
                #expect(log.start.firstLSN == .first, "\(context)")
                #expect(state?.bytes == [0xAA], "\(context): the old log with another state")
                #expect(history == oldHistory, "\(context)")
            } else {
                #expect(log.durableLSN == .none, "\(context): a log that is neither the old one, the new one nor empty")
                #expect(log.start.firstLSN == .first, "\(context)")
                #expect(history.entries.isEmpty, "\(context)")
                #expect(try ReplicaRejoinMarker.isPresent(directory: directory, fileSystem: image),
                        "\(context): an emptied replica takes a new incarnation")
            }
            if completed {
                #expect(log.start.firstLSN == part.firstLSN, "\(context): an install that returned is durable")
            }
        }
    }
}

/// A layer that refuses every snapshot (as a store refuses a checkpoint that does not decode).
struct RefusingSnapshots: StateSnapshots {
    func latest() throws(WALError) -> (file: ReadOnlyFile, covers: LSN)? { nil }
    func install(file path: String, covers: LSN) throws(WALError) {
        throw WALError(.corruption, "refused", path: path)
    }
}
