import Foundation
import Glibc
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// The options WALCrashChild opens its log with (segments small enough to roll often).
let crashChildOptions: LogOptions = {
    var o = LogOptions()
    o.logger = quietLogger
    o.segmentBytes = 256 << 10
    o.frameBytesMax = 32 << 10
    o.recordBytesMax = (32 << 10) - 4
    return o
}()

/// The directory of the running test binary, where SwiftPM also puts the package's executables.
func productsDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    precondition(n > 0)
    let path = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return URL(fileURLWithPath: path).deletingLastPathComponent().path
}

/// Runs the child appender, kills it with SIGKILL after it reported `confirmsBeforeKill` confirms (or, with
/// `killAfterMicroseconds`, that long after it started, which often lands in its recovery), and returns every
/// confirm it reported before it died (LSN -> payload digest).
func runChildAndKill(directory: String, streams: Int, seed: UInt64, confirmsBeforeKill: Int,
                     killAfterMicroseconds: UInt32? = nil, faultSpec: String? = nil) throws -> [UInt64: UInt64] {
    let child = Process()
    let childPath = productsDirectory() + "/WALCrashChild"
    let childArguments = [directory, String(streams), String(seed)]
    if let faultSpec {
        // libfiu's POSIX preload fails the named libc calls inside the real, unmodified child binary.
        child.executableURL = URL(fileURLWithPath: "/usr/bin/fiu-run")
        child.arguments = ["-x", "-c", faultSpec, childPath] + childArguments
    } else {
        child.executableURL = URL(fileURLWithPath: childPath)
        child.arguments = childArguments
    }
    child.environment = crashChildEnvironment()
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    if let delay = killAfterMicroseconds {
        let pid = child.processIdentifier
        Thread.detachNewThread {
            usleep(delay)
            kill(pid, SIGKILL)
        }
    }
    // A child that stops making progress is killed after a deadline, and the test fails saying so, instead of
    // the run hanging until CI kills it.
    let watchdog = ChildWatchdog(pid: child.processIdentifier, seconds: 120)
    defer { if watchdog.disarm() { Issue.record("the child made no progress for 120 s and was killed") } }
    let fd = pipe.fileHandleForReading.fileDescriptor
    var pendingText = [UInt8]()
    var confirms: [UInt64: UInt64] = [:]
    var killed = false
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        pendingText += chunk[0..<n]
        while let newline = pendingText.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: pendingText[..<newline], as: UTF8.self)
            pendingText.removeSubrange(...newline)
            let parts = line.split(separator: " ")
            confirms[UInt64(parts[0])!] = UInt64(parts[1], radix: 16)!
        }
        if !killed && confirms.count >= confirmsBeforeKill {
            kill(child.processIdentifier, SIGKILL)
            killed = true
        }
    }
    child.waitUntilExit()
    if faultSpec == nil {
        #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL,
                "the child must die by the test's SIGKILL, not exit or crash")
    } else {
        // Exit 3: an append failed at the injected fault; exit 1: opening the log already failed at one.
        #expect(child.terminationReason == .uncaughtSignal || [1, 3].contains(child.terminationStatus),
                "the child must stop at the injected failure or be killed")
    }
    return confirms
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct CrashTests {
    @Test func everyConfirmReportedBeforeKillDashNineIsRecovered() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        var rng = SplitMix64(seed: testSeed("WAL CrashTests"))
        var totalConfirms = 0
        for round in 0..<100 {
            let seed = UInt64(round) &* 7919
            // One round in four is killed by time, early: often while it is still recovering the last round's tail.
            let early = round % 4 == 3 ? UInt32.random(in: 0...40_000, using: &rng) : nil
            let confirms = try runChildAndKill(directory: dir, streams: Int.random(in: 1...48, using: &rng),
                                               seed: seed, confirmsBeforeKill: Int.random(in: 1...1500, using: &rng),
                                               killAfterMicroseconds: early)
            totalConfirms += confirms.count
            let log = try WriteAheadLog.open(directory: dir, options: crashChildOptions)
            defer { try? log.close() }
            for (lsn, digest) in confirms {
                let bytes = try log.read(LSN(lsn))
                let recovered = bytes.withUnsafeBytes { fnv1a($0) }
                #expect(recovered == digest, "round \(round): LSN \(lsn) differs after recovery")
            }
            if let highest = confirms.keys.max() { #expect(log.durableLSN.rawValue >= highest) }
            // Keep the log small across rounds (and exercise truncation between crashes).
            try log.truncate(before: log.durableLSN)
        }
        #expect(totalConfirms > 1000)
    }

    /// Black-box fault injection with Debian's fiu-utils: fdatasync or pwrite fail inside the real child
    /// binary; every confirm it reported before the failure must be on disk after recovery.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/fiu-run")))
    func injectedLibcFailuresInARealBinaryLoseNoConfirm() throws {
        let specs = [
            "enable_random name=posix/io/sync/fdatasync,probability=0.01",
            "enable_random name=posix/io/sync/fdatasync,probability=0.2",
            "enable_random name=posix/io/rw/pwrite,probability=0.01",
            "enable_random name=posix/io/rw/pwrite,probability=0.1",
        ]
        var confirmed = 0
        for (round, spec) in (specs + specs).enumerated() {
            let tmp = TemporaryDirectory()
            let dir = tmp.sub("log")
            let confirms = try runChildAndKill(directory: dir, streams: 8, seed: UInt64(round), confirmsBeforeKill: 200_000,
                                               killAfterMicroseconds: 10_000_000, faultSpec: spec)
            confirmed += confirms.count
            let log = try WriteAheadLog.open(directory: dir, options: crashChildOptions)
            defer { try? log.close() }
            for (lsn, digest) in confirms {
                let bytes = try log.read(LSN(lsn))
                #expect(bytes.withUnsafeBytes { fnv1a($0) } == digest, "\(spec): LSN \(lsn) differs")
            }
        }
        #expect(confirmed > 0)
    }
}
