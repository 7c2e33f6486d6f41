import Foundation
import Glibc
import LogFormat
import Testing
@testable import DurableLog

/// Outcome of one append in a workload that runs into an injected fault.
enum AppendOutcome: Sendable {
    case confirmed(LSN, stream: Int, index: Int)
    case failed(WALError)
}

func appendUnderLoad(_ log: WriteAheadLog, streams: Int, perStream: Int, size: Int = 700) async -> [AppendOutcome] {
    await withTaskGroup(of: [AppendOutcome].self) { group in
        for s in 0..<streams {
            group.addTask {
                var mine: [AppendOutcome] = []
                for i in 0..<perStream {
                    do {
                        mine.append(.confirmed(try await log.append(testRecord(s, i, size: size)), stream: s, index: i))
                    } catch let error as WALError {
                        mine.append(.failed(error))
                    } catch {
                        preconditionFailure("untyped error \(error)")
                    }
                }
                return mine
            }
        }
        var all: [AppendOutcome] = []
        for await part in group { all += part }
        return all
    }
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct FailureTests {
    static let cases: [(FaultInjectingFileSystem.Operation, Int32, Int)] = [
        (.write, EIO, 0), (.write, ENOSPC, 5), (.write, EIO, 40),
        (.dataSync, EIO, 0), (.dataSync, ENOSPC, 3), (.dataSync, EIO, 25),
        (.allocate, ENOSPC, 0), (.rename, EIO, 0), (.syncDirectory, EIO, 1),
    ]

    @Test(arguments: 0..<cases.count)
    func aFailedWriteOrSyncFailsEveryUnconfirmedAppendAndConfirmsNothingMore(caseIndex: Int) async throws {
        let (operation, code, after) = Self.cases[caseIndex]
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        let fs = FaultInjectingFileSystem()
        let options = smallOptions(segmentBytes: 64 << 10)
        let log = try WriteAheadLog.open(directory: dir, options: options, fileSystem: fs)
        let warmup = await appendUnderLoad(log, streams: 4, perStream: 5)
        fs.inject(.init(operation, after: fs.calls(operation) + after, errno: code, sticky: false))
        let outcomes = await appendUnderLoad(log, streams: 16, perStream: 40)
        #expect(fs.firedCount(operation) == 1, "the fault must have fired")

        let failures = outcomes.compactMap { if case .failed(let e) = $0 { e } else { nil } }
        #expect(!failures.isEmpty)
        #expect(failures.contains { $0.code == .ioFailure && $0.errno == code }, "the covered appends see the cause")
        #expect(failures.allSatisfy { $0.code == .ioFailure || $0.code == .logFailed })
        // The fault fired once; the file system is healthy again, yet the log stays failed (no retried sync).
        await #expect { try await log.append([1]) } throws: { ($0 as? WALError)?.code == .logFailed }
        #expect { try [UInt8]([1]).withUnsafeBytes { try log.appendAndWait($0) } } throws: {
            ($0 as? WALError)?.code == .logFailed
        }

        let confirmed = (warmup + outcomes).compactMap { o -> (LSN, Int, Int)? in
            if case .confirmed(let l, let s, let i) = o { (l, s, i) } else { nil }
        }
        // Reads of confirmed data still work on the failed log.
        if let (lsn, s, i) = confirmed.last { #expect(try log.read(lsn) == testRecord(s, i, size: 700)) }
        #expect { try log.close() } throws: { ($0 as? WALError)?.code == .logFailed }

        let reopened = try WriteAheadLog.open(directory: dir, options: options)
        for (lsn, s, i) in confirmed { #expect(try reopened.read(lsn) == testRecord(s, i, size: 700)) }
        let next = try await reopened.append([7, 7])
        #expect(next > (confirmed.map(\.0).max() ?? .none))
        try reopened.close()
    }

    /// The blocking form, which may write and sync on the caller's own thread, fails the same way.
    @Test func aFailedSyncOnTheCallersOwnThreadFailsThatAppendAndEveryLaterOne() throws {
        let tmp = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: tmp.sub("log"), options: smallOptions(), fileSystem: fs)
        let first = try [UInt8]([1]).withUnsafeBytes { try log.appendAndWait($0) }
        fs.inject(.init(.dataSync, after: fs.calls(.dataSync), errno: EIO, sticky: false))
        #expect { try [UInt8]([2]).withUnsafeBytes { try log.appendAndWait($0) } } throws: {
            ($0 as? WALError)?.code == .ioFailure && ($0 as? WALError)?.errno == EIO
        }
        #expect { try [UInt8]([3]).withUnsafeBytes { try log.appendAndWait($0) } } throws: {
            ($0 as? WALError)?.code == .logFailed
        }
        #expect(log.durableLSN == first)
        #expect { try log.close() } throws: { ($0 as? WALError)?.code == .logFailed }
        let reopened = try WriteAheadLog.open(directory: tmp.sub("log"), options: smallOptions())
        #expect(try reopened.read(first) == [1])
        try reopened.close()
    }

    @Test func confirmsStopAtTheFailureInLSNOrder() async throws {
        let tmp = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        var options = smallOptions()
        options.syncsInFlightMax = 4
        let log = try WriteAheadLog.open(directory: tmp.sub("log"), options: options, fileSystem: fs)
        fs.inject(.init(.dataSync, after: fs.calls(.dataSync) + 10, errno: EIO, sticky: false))
        let outcomes = await appendUnderLoad(log, streams: 32, perStream: 30)
        let confirmed = outcomes.compactMap { if case .confirmed(let l, _, _) = $0 { l.rawValue } else { nil } }
        // Confirms are a dense prefix: nothing after a gap was confirmed.
        if let highest = confirmed.max() { #expect(Set(confirmed) == Set(1...highest)) }
        #expect(log.durableLSN.rawValue == (confirmed.max() ?? 0))
        try? log.close()
    }

    /// EIO at every call site in turn: the n-th write, sync, allocation, rename, delete and directory sync
    /// of a workload that rolls segments and truncates. Whatever fails, reopening loses no confirm.
    @Test func anErrorAtEveryCallSiteInTurnLosesNoConfirm() async throws {
        for operation in [FaultInjectingFileSystem.Operation.write, .dataSync, .allocate, .rename, .remove, .syncDirectory] {
            // Count the calls of a clean run.
            let clean = FaultInjectingFileSystem()
            let probe = TemporaryDirectory()
            try await Self.workload(directory: probe.sub("log"), fileSystem: clean)
            let calls = clean.calls(operation)
            #expect(calls > 0, "\(operation) never called")
            for n in 0..<min(calls, 40) {
                let tmp = TemporaryDirectory()
                let fs = FaultInjectingFileSystem()
                fs.inject(.init(operation, after: n, errno: EIO, sticky: false))
                let confirmed = try await Self.workload(directory: tmp.sub("log"), fileSystem: fs)
                let reopened = try WriteAheadLog.open(directory: tmp.sub("log"), options: smallOptions(segmentBytes: 64 << 10))
                for (lsn, record) in confirmed where lsn >= reopened.firstLSN {
                    #expect(try reopened.read(lsn) == record, "\(operation) #\(n): LSN \(lsn)")
                }
                try reopened.close()
            }
        }
    }

    /// 120 appends of 700 bytes (several segment rolls) with a truncation every 40; returns the confirms.
    @discardableResult
    static func workload(directory: String, fileSystem: any FileSystem) async throws -> [(LSN, [UInt8])] {
        var confirmed: [(LSN, [UInt8])] = []
        guard let log = try? WriteAheadLog.open(directory: directory, options: smallOptions(segmentBytes: 64 << 10),
                                                fileSystem: fileSystem) else { return [] }
        for i in 0..<120 {
            let record = testRecord(7, i, size: 700)
            guard let lsn = try? await log.append(record) else { break }
            confirmed.append((lsn, record))
            if i % 40 == 39 { try? log.truncate(before: log.durableLSN) }
        }
        try? log.close()
        return confirmed
    }
}
