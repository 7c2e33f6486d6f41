import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import WriteAheadLog

/// What a power-loss run found.
struct PowerLossOutcome {
    var confirmed = 0
    var lost: [LSN] = []
    var differing: [LSN] = []
    var openError: WALError?
    var tornTailCut = false
    var failureSummary: String? {
        if let openError { return "reopen failed: \(openError)" }
        if !lost.isEmpty { return "confirmed LSNs lost: \(lost.prefix(5))" }
        if !differing.isEmpty { return "confirmed LSNs changed: \(differing.prefix(5))" }
        return nil
    }
}

let simulatedDirectory = "/sim/log"

func powerLossOptions() -> LogOptions {
    var o = smallOptions(segmentBytes: 64 << 10)
    o.frameBytesMax = 8 << 10
    o.recordBytesMax = (8 << 10) - 4
    o.pendingBytesMax = 32 << 10
    return o
}

/// Appends from `streams` tasks on a simulated disk that loses power before mutating operation
/// `crashBefore`, then reopens the image a power cut leaves (chosen by `seed`) and checks every confirm.
func powerLossRun(seed: UInt64, crashBefore: Int?, streams: Int = 4, perStream: Int = 40,
                  options: LogOptions = powerLossOptions(), crashDuringRecovery: Bool = false,
                  wrap: (SimulatedDisk) -> any FileSystem = { $0 }) async -> PowerLossOutcome {
    let disk = SimulatedDisk()
    if let crashBefore { disk.crash(beforeOperation: crashBefore) }
    let confirms = LockedBox<[LSN: [UInt8]]>([:])
    if let log = try? WriteAheadLog.open(directory: simulatedDirectory, options: options, fileSystem: wrap(disk)) {
        await withTaskGroup(of: Void.self) { group in
            for s in 0..<streams {
                group.addTask {
                    for i in 0..<perStream {
                        let record = testRecord(s, i + Int(seed % 1000), size: 200 + (i * 37 + s * 11) % 1500)
                        guard let lsn = try? await log.append(record) else { return }
                        confirms.mutate { $0[lsn] = record }
                    }
                }
            }
        }
        try? log.close()
    }
    disk.crash()
    var image = disk.crashImage(seed: seed)
    if crashDuringRecovery {
        // Power fails again part-way through recovery; the second recovery must reach the same state.
        var rng = SplitMix64(seed: seed ^ 0xABCD)
        image.crash(beforeOperation: Int(rng.next() % 12))
        if let log = try? WriteAheadLog.open(directory: simulatedDirectory, options: options, fileSystem: image) {
            try? log.close()
        }
        image.crash()
        image = image.crashImage(seed: seed &+ 1)
    }
    var outcome = PowerLossOutcome()
    let confirmed = confirms.get()
    outcome.confirmed = confirmed.count
    do {
        let log = try WriteAheadLog.open(directory: simulatedDirectory, options: options, fileSystem: image)
        defer { try? log.close() }
        outcome.tornTailCut = log.recoveryReport.tornTail != nil
        for (lsn, record) in confirmed.sorted(by: { $0.key < $1.key }) {
            do {
                if try log.read(lsn) != record { outcome.differing.append(lsn) }
            } catch {
                outcome.lost.append(lsn)
            }
        }
    } catch {
        outcome.openError = error
    }
    return outcome
}

@Suite(.serialized) struct PowerLossTests {
    /// Counts the mutating operations of an uninterrupted run, to place crash points.
    func operationsOfACleanRun(streams: Int, perStream: Int) async throws -> Int {
        let disk = SimulatedDisk()
        let log = try WriteAheadLog.open(directory: simulatedDirectory, options: powerLossOptions(), fileSystem: disk)
        for i in 0..<(streams * perStream) { _ = try await log.append(testRecord(0, i, size: 200 + (i * 37) % 1500)) }
        try log.close()
        return disk.operations
    }

    @Test func everyConfirmSurvivesPowerLossAtEveryOperationOfASmallWorkload() async throws {
        let operations = try await operationsOfACleanRun(streams: 1, perStream: 60)
        #expect(operations > 100)
        var checked = 0
        for point in 0...operations {
            for seed in [UInt64(point), UInt64(point) &* 7919 &+ 1] {
                let outcome = await powerLossRun(seed: seed, crashBefore: point, streams: 1, perStream: 60)
                checked += outcome.confirmed
                if let failure = outcome.failureSummary {
                    Issue.record("crash before operation \(point), seed \(seed): \(failure)")
                    return
                }
            }
        }
        #expect(checked > 1000)
    }

    @Test func everyConfirmSurvivesPowerLossUnderConcurrentLoad() async throws {
        var checked = 0
        var tornTails = 0
        for seed in UInt64(1)...300 {
            var rng = SplitMix64(seed: seed)
            let outcome = await powerLossRun(seed: seed, crashBefore: 20 + Int(rng.next() % 400), streams: 8, perStream: 30)
            checked += outcome.confirmed
            if outcome.tornTailCut { tornTails += 1 }
            if let failure = outcome.failureSummary {
                Issue.record("seed \(seed): \(failure)")
                return
            }
        }
        #expect(checked > 5000)
        #expect(tornTails > 30, "the simulated power cuts must leave torn tails for recovery to cut")
    }

    @Test func recoveryInterruptedByAnotherPowerLossLosesNothing() async throws {
        for seed in UInt64(1000)...1100 {
            var rng = SplitMix64(seed: seed)
            let outcome = await powerLossRun(seed: seed, crashBefore: 30 + Int(rng.next() % 300), streams: 4,
                                             perStream: 30, crashDuringRecovery: true)
            if let failure = outcome.failureSummary {
                Issue.record("seed \(seed): \(failure)")
                return
            }
        }
    }

    /// The harness must catch a log that confirms without syncing: with fdatasync skipped, a power cut
    /// loses confirmed records.
    @Test func theHarnessCatchesConfirmsWithoutFdatasync() async throws {
        var options = powerLossOptions()
        options.durability = .unsafeNoSync
        var caught = 0
        for seed in UInt64(1)...40 {
            let outcome = await powerLossRun(seed: seed, crashBefore: 200, streams: 4, perStream: 30, options: options)
            if outcome.failureSummary != nil { caught += 1 }
        }
        #expect(caught > 20, "power loss must expose confirms that were never synced")
    }

    /// The harness must catch a log that never makes its segment renames durable: skipping the directory
    /// fsync (here at the file-system seam) loses confirmed records in new segments after a power cut.
    @Test func theHarnessCatchesAMissingDirectorySync() async throws {
        var caught = 0
        for seed in UInt64(1)...40 {
            let outcome = await powerLossRun(seed: seed, crashBefore: 400, streams: 4, perStream: 40,
                                             wrap: { SkippingDirectorySync(base: $0) })
            if outcome.failureSummary != nil { caught += 1 }
        }
        #expect(caught > 5, "power loss must expose segments whose directory entry was never synced")
    }
}

/// A deliberately broken file system: `fsync` of a directory does nothing.
final class SkippingDirectorySync: FileSystem {
    let base: any FileSystem
    init(base: any FileSystem) { self.base = base }
    func open(_ path: String, writable: Bool, create: Bool) throws(WALError) -> Int32 { try base.open(path, writable: writable, create: create) }
    func close(_ fd: Int32) { base.close(fd) }
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(WALError) { try base.write(fd, bytes, at: offset, path: path) }
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(WALError) -> Int { try base.read(fd, into: buffer, at: offset, path: path) }
    func dataSync(_ fd: Int32, path: String) throws(WALError) { try base.dataSync(fd, path: path) }
    func allocate(_ fd: Int32, bytes: Int, path: String) throws(WALError) { try base.allocate(fd, bytes: bytes, path: path) }
    func size(_ fd: Int32, path: String) throws(WALError) -> Int { try base.size(fd, path: path) }
    func lockExclusively(_ fd: Int32, path: String) throws(WALError) { try base.lockExclusively(fd, path: path) }
    func rename(_ from: String, to: String) throws(WALError) { try base.rename(from, to: to) }
    func remove(_ path: String) throws(WALError) { try base.remove(path) }
    func syncDirectory(_ path: String) throws(WALError) {}
    func createDirectory(_ path: String) throws(WALError) { try base.createDirectory(path) }
    func list(_ path: String) throws(WALError) -> [String] { try base.list(path) }
}
