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
