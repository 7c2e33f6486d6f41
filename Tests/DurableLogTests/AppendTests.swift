import Foundation
import LogFormat
import Testing
@testable import DurableLog

@Suite(.timeLimit(.minutes(10))) struct AppendTests {
    @Test func concurrentAppendsCompleteOnceWithDenseUniqueLSNs() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        let streams = 64, perStream = 60
        let results = try await withThrowingTaskGroup(of: [(LSN, Int, Int)].self) { group in
            for s in 0..<streams {
                group.addTask {
                    var mine: [(LSN, Int, Int)] = []
                    for i in 0..<perStream { mine.append((try await log.append(testRecord(s, i)), s, i)) }
                    return mine
                }
            }
            var all: [(LSN, Int, Int)] = []
            for try await part in group {
                // Within one stream, LSNs increase in the order the appends were made.
                #expect(zip(part, part.dropFirst()).allSatisfy { $0.0 < $1.0 })
                all += part
            }
            return all
        }
        #expect(results.count == streams * perStream)
        #expect(Set(results.map(\.0.rawValue)) == Set(1...UInt64(streams * perStream)))
        #expect(log.durableLSN == LSN(UInt64(streams * perStream)))
        for (lsn, s, i) in results { #expect(try log.read(lsn) == testRecord(s, i)) }
        let counters = log.counters
        #expect(counters.records == UInt64(streams * perStream))
        #expect(counters.appends == UInt64(streams * perStream))
        #expect(counters.syncs >= 1 && counters.syncs <= counters.groups + 8)
        #expect(counters.bytesWritten < counters.bytesUncompressed, "LZ4 should shrink these records")
        #expect(segmentPaths(dir.path).count > 1, "small segments should have rolled")
        try log.close()

        let reopened = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        #expect(reopened.recoveryReport.cleanShutdown)
        #expect(reopened.recoveryReport.tornTail == nil)
        for (lsn, s, i) in results.shuffled().prefix(300) { #expect(try reopened.read(lsn) == testRecord(s, i)) }
        #expect(try readAll(reopened).count == streams * perStream)
        #expect(try await reopened.append([1, 2, 3]) == LSN(UInt64(streams * perStream + 1)))
        try reopened.close()
    }

    @Test func batchCallbackAndBlockingFormsAllWaitForTheSync() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        let first = try await log.append(contentsOf: [[1], [2, 2], [3, 3, 3]])
        #expect(first == LSN(1))
        #expect(log.durableLSN == LSN(3))
        let done = DispatchSemaphore(value: 0)
        let seen = LockedBox<Result<LSN, WALError>?>(nil)
        try [UInt8](repeating: 9, count: 10).withUnsafeBytes { bytes in
            try log.append(bytes) { result in
                seen.set(result)
                done.signal()
            }
        }
        done.wait()
        #expect(seen.get() == .success(LSN(4)))
        #expect(log.durableLSN >= LSN(4))
        let blocking = try [UInt8]([5]).withUnsafeBytes { try log.appendAndWait($0) }
        #expect(blocking == LSN(5))
        #expect(try log.read(LSN(2)) == [2, 2])
        #expect(try log.read(LSN(4)) == [UInt8](repeating: 9, count: 10))
        #expect { try log.read(LSN(6)) } throws: { ($0 as? WALError)?.code == .lsnOutOfRange }
        #expect { try log.read(LSN(0)) } throws: { ($0 as? WALError)?.code == .lsnOutOfRange }
        try log.close()
        await #expect { try await log.append([1]) } throws: { ($0 as? WALError)?.code == .closed }
    }

    /// Blocking callers may write and sync an idle log on their own thread; mixed with async appends from
    /// tasks and with each other, every append still completes once, durable, with dense LSNs.
    @Test func blockingAndAsyncAppendsMixedCompleteExactlyOnce() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        let threads = 6, perThread = 150
        let blockingLSNs = LockedBox<[LSN]>([])
        let finished = DispatchGroup()
        for t in 0..<threads {
            finished.enter()
            Thread.detachNewThread {
                for i in 0..<perThread {
                    let r = testRecord(100 + t, i)
                    if let lsn = try? r.withUnsafeBytes({ try log.appendAndWait($0) }) {
                        #expect(log.durableLSN >= lsn, "appendAndWait returned before its record was durable")
                        blockingLSNs.mutate { $0.append(lsn) }
                    }
                }
                finished.leave()
            }
        }
        let asyncLSNs = try await withThrowingTaskGroup(of: LSN.self) { group in
            for i in 0..<300 { group.addTask { try await log.append(testRecord(200, i)) } }
            var all: [LSN] = []
            for try await l in group { all.append(l) }
            return all
        }
        finished.wait()
        let all = blockingLSNs.get() + asyncLSNs
        #expect(all.count == threads * perThread + 300)
        #expect(Set(all.map(\.rawValue)) == Set(1...UInt64(all.count)))
        #expect(try readAll(log).count == all.count)
        try log.close()
    }

    @Test func recordsLargerThanTheLimitAreRefused() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        let tooBig = [UInt8](repeating: 1, count: smallOptions().recordBytesMax + 1)
        await #expect { try await log.append(tooBig) } throws: { ($0 as? WALError)?.code == .recordTooLarge }
        let justFits = [UInt8](repeating: 2, count: smallOptions().recordBytesMax)
        let lsn = try await log.append(justFits)
        #expect(try log.read(lsn) == justFits)
        try log.close()
    }

    @Test func backpressureHoldsProducersWithoutLosingAny() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.pendingBytesMax = options.frameBytesMax
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        let lsns = try await withThrowingTaskGroup(of: LSN.self) { group in
            for i in 0..<400 { group.addTask { try await log.append(testRecord(1, i, size: 3000)) } }
            var all: [LSN] = []
            for try await l in group { all.append(l) }
            return all
        }
        #expect(Set(lsns).count == 400)
        #expect(try readAll(log).count == 400)
        // The non-blocking form reports a full buffer instead of waiting.
        var full = 0
        let big = [UInt8](repeating: 3, count: options.recordBytesMax)
        for _ in 0..<50 {
            do {
                try big.withUnsafeBytes { try log.append($0) { _ in } }
            } catch let e as WALError where e.code == .pendingFull {
                full += 1
            }
        }
        #expect(full > 0)
        try log.close()
    }

    @Test func theRecordBoundHoldsGroupsOfTinyRecords() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.pendingRecordsMax = 8
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        let lsns = try await withThrowingTaskGroup(of: LSN.self) { group in
            for i in 0..<300 { group.addTask { try await log.append([UInt8(truncatingIfNeeded: i)]) } }
            var all: [LSN] = []
            for try await l in group { all.append(l) }
            return all
        }
        #expect(Set(lsns).count == 300)
        let counters = log.counters
        #expect(Double(counters.records) / Double(counters.groups) <= 8, "no group may exceed pendingRecordsMax")
        await #expect { try await log.append(contentsOf: (0..<9).map { [UInt8($0)] }) } throws: {
            ($0 as? WALError)?.code == .recordTooLarge
        }
        try log.close()
    }

    @Test func truncateDropsWholeSegmentsBelowTheLSN() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions(segmentBytes: 64 << 10))
        for i in 0..<1500 { _ = try await log.append(testRecord(2, i, size: 600)) }
        let before = segmentPaths(dir.path).count
        #expect(before > 3)
        try log.truncate(before: LSN(1200))
        let after = segmentPaths(dir.path).count
        #expect(after < before && after >= 1)
        #expect(log.firstLSN > LSN(1) && log.firstLSN <= LSN(1200))
        #expect { try log.read(LSN(1)) } throws: { ($0 as? WALError)?.code == .lsnOutOfRange }
        #expect(try log.read(LSN(1200)) == testRecord(2, 1199, size: 600))
        try log.close()
        let reopened = try WriteAheadLog.open(directory: dir.path, options: smallOptions(segmentBytes: 64 << 10))
        #expect(reopened.firstLSN == log.firstLSN)
        #expect(try reopened.read(LSN(1500)) == testRecord(2, 1499, size: 600))
        try reopened.close()
    }

    @Test func aLogWrittenWithLargeFramesReadsWithSmallerOptions() async throws {
        let dir = TemporaryDirectory()
        var large = LogOptions()
        large.segmentBytes = 4 << 20
        let log = try WriteAheadLog.open(directory: dir.path, options: large)
        let records = (0..<300).map { testRecord(8, $0, size: 3000) }
        _ = try await log.append(contentsOf: records)   // one group: frames up to 1 MiB
        try log.close()
        var small = smallOptions(segmentBytes: 4 << 20)
        small.frameBytesMax = 4096
        small.recordBytesMax = 4092
        let reopened = try WriteAheadLog.open(directory: dir.path, options: small)
        #expect(try readAll(reopened) == records)
        try reopened.close()
    }

    @Test func aSecondWriterIsLockedOut() throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        #expect { try WriteAheadLog.open(directory: dir.path, options: smallOptions()) } throws: {
            ($0 as? WALError)?.code == .locked
        }
        try log.close()
        try WriteAheadLog.open(directory: dir.path, options: smallOptions()).close()
    }

    @Test func unsafeNoSyncModeNeverCallsFdatasync() async throws {
        let dir = TemporaryDirectory()
        var options = smallOptions()
        options.durability = .unsafeNoSync
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        for i in 0..<20 { _ = try await log.append(testRecord(3, i)) }
        #expect(log.counters.syncs == 0)
        try log.close()
    }
}

final class LockedBox<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func mutate(_ body: (inout T) -> Void) { lock.lock(); body(&value); lock.unlock() }
}
