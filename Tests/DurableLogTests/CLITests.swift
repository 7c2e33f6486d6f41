import Foundation
import Glibc
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// Runs the walctl binary built beside the tests.
func walctl(_ arguments: String...) throws -> ToolRun {
    try ToolRun.run(productsDirectory() + "/walctl", arguments)
}

func parseJSON(_ text: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
}

/// Every file's bytes and modification time, to prove a command changed nothing.
func snapshot(_ directory: String) throws -> [String: (Data, Date)] {
    var result: [String: (Data, Date)] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
        let path = directory + "/" + name
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        result[name] = (FileManager.default.contents(atPath: path)!, attributes[.modificationDate] as! Date)
    }
    return result
}

func expectUnchanged(_ before: [String: (Data, Date)], _ after: [String: (Data, Date)], _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(Set(before.keys) == Set(after.keys), "\(what) added or removed files", sourceLocation: sourceLocation)
    for (name, (bytes, date)) in before {
        #expect(after[name]?.0 == bytes, "\(what) changed \(name)", sourceLocation: sourceLocation)
        #expect(after[name]?.1 == date, "\(what) touched \(name)", sourceLocation: sourceLocation)
    }
}

/// The log committed under Tests/Fixtures: 12 records `testRecord(0, i)` written by format version 1.
let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/wal-format-1").path

@Suite(.serialized, .timeLimit(.minutes(10))) struct CLITests {
    /// Three logs: clean, with a torn tail, and with a damaged confirmed frame.
    func makeLogs(_ tmp: TemporaryDirectory) throws -> (clean: String, torn: String, corrupt: String, image: LogImage) {
        let image = try LogImage(count: 6)
        let clean = image.install(image.segment, in: tmp)
        var torn = image.unsealed
        for i in (image.frames[5].offset + 20)..<image.frameEnd(5) { torn[i] = 0xAB }
        var corrupt = image.unsealed
        corrupt[image.frames[2].offset + 70] ^= 0x08
        return (clean, image.install(torn, in: tmp), image.install(corrupt, in: tmp), image)
    }

    @Test func verifyExitCodesTellCleanTornAndCorrupt() throws {
        let tmp = TemporaryDirectory()
        let logs = try makeLogs(tmp)
        let clean = try walctl("verify", logs.clean)
        #expect(clean.status == 0)
        #expect(clean.output.hasPrefix("clean: 1 segment(s), 6 frame(s), LSN 1 through 6"))
        let torn = try walctl("verify", logs.torn)
        #expect(torn.status == 1)
        #expect(torn.output.contains("torn-tail"))
        #expect(torn.output.contains("byte \(logs.image.frames[5].offset)"))
        let corrupt = try walctl("verify", logs.corrupt)
        #expect(corrupt.status == 2)
        #expect(corrupt.output.contains("byte \(logs.image.frames[2].offset)"))
        #expect(corrupt.output.contains("LSN 3 through at least"))

        let json = try parseJSON(try walctl("verify", "--json", logs.corrupt).output)
        #expect(json["state"] as? String == "corruption")
        let finding = json["finding"] as? [String: Any]
        #expect(finding?["offset"] as? Int == logs.image.frames[2].offset)
        #expect((finding?["confirmedLSNsAffected"] as? [Int])?.first == 3)
        // The CLI reports the same place that open refuses.
        expectCorruption(logs.corrupt, offset: logs.image.frames[2].offset, firstLSN: 3)

        let missing = try walctl("verify", tmp.sub("nowhere"))
        #expect(missing.status == 74)
        #expect(missing.errors.contains("not a directory"))
        #expect(try walctl("verify").status == 64)
    }

    @Test func readOnlyCommandsChangeNoByteAndNoMtime() throws {
        let tmp = TemporaryDirectory()
        let logs = try makeLogs(tmp)
        for dir in [logs.clean, logs.torn, logs.corrupt] {
            let before = try snapshot(dir)
            for command in [["info", dir], ["info", "--json", dir], ["verify", dir], ["dump", dir],
                            ["dump", "--format", "jsonl", "--raw", dir], ["recover", "--dry-run", dir]] {
                let exact = Process()
                exact.executableURL = URL(fileURLWithPath: productsDirectory() + "/walctl")
                exact.arguments = command
                exact.standardOutput = FileHandle.nullDevice
                exact.standardError = FileHandle.nullDevice
                try exact.run()
                exact.waitUntilExit()
                expectUnchanged(before, try snapshot(dir), command.joined(separator: " "))
            }
        }
    }

    @Test func infoAndDumpShowTheRecords() throws {
        let tmp = TemporaryDirectory()
        let logs = try makeLogs(tmp)
        let info = try parseJSON(try walctl("info", "--json", logs.clean).output)
        #expect(info["records"] as? Int == 6)
        #expect(info["cleanShutdown"] as? Bool == true)
        #expect(info["state"] as? String == "clean")
        #expect(info["writerHoldsLock"] as? Bool == false)
        #expect((info["segments"] as? [[String: Any]])?.count == 1)
        let text = try walctl("info", logs.torn).output
        #expect(text.contains("torn tail"))

        let dump = try walctl("dump", "--format", "jsonl", "--from", "2", "--limit", "3", "--width", "0", logs.clean)
        let lines = dump.output.split(separator: "\n").map { try! parseJSON(String($0)) }
        #expect(lines.map { $0["lsn"] as? Int } == [2, 3, 4])
        #expect(lines.map { $0["payload"] as? String } == (1...3).map { String(decoding: logs.image.records[$0], as: UTF8.self) })
        let hex = try walctl("dump", "--payload", "hex", "--from", "6", "--width", "4", logs.clean).output
        let expectedHex = logs.image.records[5].prefix(4).map { String(format: "%02x", $0) }.joined()
        #expect(hex == "6\t\(logs.image.records[5].count)\t\(expectedHex)\n")
    }

    @Test func recoverCutsATornTailAndRefusesCorruption() throws {
        let tmp = TemporaryDirectory()
        let logs = try makeLogs(tmp)
        let dry = try walctl("recover", "--dry-run", logs.torn)
        #expect(dry.status == 1 && dry.output.contains("would cut"))
        let done = try walctl("recover", logs.torn)
        #expect(done.status == 0)
        #expect(done.output.contains("continues at LSN 6"))
        #expect(try walctl("verify", logs.torn).status == 0)

        let before = try snapshot(logs.corrupt)
        let refused = try walctl("recover", logs.corrupt)
        #expect(refused.status == 2)
        var after = try snapshot(logs.corrupt)
        after["LOCK"] = nil  // recover takes the writer's lock, creating the lock file; the log is untouched
        expectUnchanged(before, after, "recover of a corrupt log")

        let log = try WriteAheadLog.open(directory: logs.clean, options: smallOptions())
        let locked = try walctl("recover", logs.clean)
        #expect(locked.status == 74 && locked.errors.contains("another process"))
        #expect(try parseJSON(try walctl("info", "--json", logs.clean).output)["writerHoldsLock"] as? Bool == true)
        try log.close()
    }

    /// A log written by format version 1 is committed; if a change to the format breaks reading it, this fails.
    @Test func committedFixtureStillReads() throws {
        let tmp = TemporaryDirectory()
        let copy = tmp.sub("fixture")
        try FileManager.default.copyItem(atPath: fixtureDirectory, toPath: copy)
        let log = try WriteAheadLog.open(directory: copy, options: smallOptions(segmentBytes: 64 << 10))
        #expect(log.recoveryReport.cleanShutdown)
        #expect(try readAll(log) == (0..<12).map { testRecord(0, $0) })
        try log.close()
        let before = try snapshot(fixtureDirectory)
        let verify = try walctl("verify", fixtureDirectory)
        #expect(verify.status == 0)
        let golden = try String(contentsOfFile: fixtureDirectory + "/../wal-format-1.dump.txt", encoding: .utf8)
        #expect(try walctl("dump", "--width", "24", fixtureDirectory).output == golden)
        expectUnchanged(before, try snapshot(fixtureDirectory), "reading the fixture")
    }

    /// Writes the fixture (run once by hand with WAL_WRITE_FIXTURE=1 when the format version changes).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WAL_WRITE_FIXTURE"] != nil))
    func writeFixture() throws {
        try? FileManager.default.removeItem(atPath: fixtureDirectory)
        try writeLog(fixtureDirectory, count: 12, options: smallOptions(segmentBytes: 64 << 10))
        for name in try FileManager.default.contentsOfDirectory(atPath: fixtureDirectory) where !name.hasSuffix(".wal") {
            try FileManager.default.removeItem(atPath: fixtureDirectory + "/" + name)
        }
        let dump = try walctl("dump", "--width", "24", fixtureDirectory).output
        try dump.write(toFile: fixtureDirectory + "/../wal-format-1.dump.txt", atomically: true, encoding: .utf8)
    }

    /// Copies of the committed fixture: as it is, with its last frame torn, and with a confirmed frame damaged.
    func fixtureVariants(_ tmp: TemporaryDirectory) throws -> [(name: String, directory: String)] {
        let segmentName = "00000000000000000001.wal"
        let original = readFile(fixtureDirectory + "/" + segmentName)
        let frames = frameOffsets(fixtureDirectory + "/" + segmentName)
        var variants: [(String, [UInt8])] = [("clean", original)]
        var torn = original
        let last = frames[frames.count - 2]   // the last record frame; the seal follows it
        for i in (last.offset + 30)..<(frames[frames.count - 1].offset + 56) { torn[i] = UInt8(truncatingIfNeeded: i &* 31) }
        variants.append(("torn", torn))
        var corrupt = original
        corrupt[frames[4].offset + 100] ^= 0x20
        variants.append(("corrupt", corrupt))
        return try variants.map { name, bytes in
            let dir = tmp.sub(name)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: dir + "/" + segmentName, contents: Data(bytes))
            return (name, dir)
        }
    }

    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/golden").path

    /// `info` and `verify --json` (without its timing) on the fixture and two damaged copies, against committed
    /// golden files; directory paths are replaced by <DIR>.
    func goldenOutputs(_ tmp: TemporaryDirectory) throws -> [String: String] {
        var outputs: [String: String] = [:]
        for (name, dir) in try fixtureVariants(tmp) {
            outputs["info-\(name).txt"] = try walctl("info", dir).output.replacingOccurrences(of: dir, with: "<DIR>")
            var verify = try parseJSON(try walctl("verify", "--json", dir).output)
            verify["seconds"] = nil
            verify["directory"] = "<DIR>"
            let data = try JSONSerialization.data(withJSONObject: verify, options: [.sortedKeys, .prettyPrinted])
            outputs["verify-\(name).json"] = String(decoding: data, as: UTF8.self)
                .replacingOccurrences(of: dir.replacingOccurrences(of: "/", with: "\\/"), with: "<DIR>") + "\n"
        }
        return outputs
    }

    @Test func outputsMatchTheGoldenFiles() throws {
        let tmp = TemporaryDirectory()
        for (file, output) in try goldenOutputs(tmp) {
            let golden = try String(contentsOfFile: Self.goldenDirectory + "/" + file, encoding: .utf8)
            #expect(output == golden, "\(file) differs from its golden file")
        }
    }

    /// Rewrites the golden files (run by hand with WAL_WRITE_FIXTURE=1 after a deliberate output change).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WAL_WRITE_FIXTURE"] != nil))
    func writeGoldenFiles() throws {
        let tmp = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: Self.goldenDirectory, withIntermediateDirectories: true)
        for (file, output) in try goldenOutputs(tmp) {
            try output.write(toFile: Self.goldenDirectory + "/" + file, atomically: true, encoding: .utf8)
        }
    }
}

/// `walctl compare`: replicas that agree (one of them behind), an uncommitted divergent tail, and confirmed
/// records that differ, each with its exit code; and it changes nothing.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CompareCommandTests {
    @Test func replicasThatAgreeOrOneBehindCompareTheSame() async throws {
        let dir = TemporaryDirectory()
        let leader = try WriteAheadLog.open(directory: dir.sub("leader"), options: smallOptions())
        for i in 0..<40 { _ = try await leader.append(testRecord(1, i)) }
        let ahead = try WriteAheadLog.open(directory: dir.sub("a"), options: replicaOptions(of: leader))
        let behind = try WriteAheadLog.open(directory: dir.sub("b"), options: replicaOptions(of: leader))
        var toAhead = try InProcessShipper(leader: leader, follower: ahead, epoch: 0)
        try await toAhead.shipAll()
        var toBehind = try InProcessShipper(leader: leader, follower: behind, epoch: 0)
        _ = try await toBehind.shipOne(maxBytes: 2_000)
        for log in [leader, ahead, behind] { try log.close() }
        let before = try snapshot(dir.sub("b"))

        let run = try walctl("compare", dir.sub("leader"), dir.sub("a"), dir.sub("b"))
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        #expect(run.output.contains("same: every frame two replicas both hold is identical"))
        #expect(run.output.contains("\(dir.sub("b")): LSN 1..<\(behind.durableLSN.next)"))
        #expect(run.output.contains("lacks committed records"), "b is behind")
        expectUnchanged(before, try snapshot(dir.sub("b")), "compare")
        let object = try parseJSON(try walctl("compare", "--json", dir.sub("leader"), dir.sub("a")).output)
        #expect(object["difference"] == nil)
        #expect(object["agreeBefore"] as? Int == 41)
    }

    @Test func anUncommittedTailAndDifferingConfirmedRecordsAreFoundAtTheirFirstFrame() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        let original = try WriteAheadLog.open(directory: dir.sub("x"), options: options)
        for i in 0..<10 { _ = try await original.append(testRecord(1, i)) }
        try original.close()
        try FileManager.default.copyItem(atPath: dir.sub("x"), toPath: dir.sub("y"))
        options.identity = original.identity
        // One more record each, different: each one's frame vouches only for what came before it (the logs
        // stay open, so no seal says more).
        let x = try WriteAheadLog.open(directory: dir.sub("x"), options: options)
        let y = try WriteAheadLog.open(directory: dir.sub("y"), options: options)
        _ = try await x.append(testRecord(2, 0))
        _ = try await y.append(testRecord(3, 0))
        var run = try walctl("compare", dir.sub("x"), dir.sub("y"))
        #expect(run.status == 1, "\(run.output)\(run.errors)")
        #expect(run.output.contains("DIFFER at LSN 11 (past the committed LSN 10"))

        // More records on each: now later frames vouch for the differing ones.
        _ = try await x.append(testRecord(2, 1))
        _ = try await y.append(testRecord(3, 1))
        run = try walctl("compare", "--json", dir.sub("x"), dir.sub("y"))
        #expect(run.status == 2)
        let object = try parseJSON(run.output)
        let difference = try #require(object["difference"] as? [String: Any])
        #expect(difference["lsn"] as? Int == 11)
        #expect(difference["withinCommitted"] as? Bool == true)
        try x.close()
        try y.close()

        let other = try WriteAheadLog.open(directory: dir.sub("other"), options: smallOptions())
        _ = try await other.append(testRecord(4, 0))
        try other.close()
        #expect(try walctl("compare", dir.sub("x"), dir.sub("other")).status == 74, "another log")
        try FileManager.default.createDirectory(atPath: dir.sub("empty"), withIntermediateDirectories: true)
        let withEmpty = try walctl("compare", dir.sub("empty"), dir.sub("x"))
        #expect(withEmpty.status == 0, "an empty replica is behind: \(withEmpty.output)\(withEmpty.errors)")
        #expect(try walctl("compare", dir.sub("x")).status == 74, "one directory")
    }
}
