import Foundation
import LogFormat
import Testing
@testable import DurableLog

/// The log measures what a low-level submission adds instead of trusting its declared count and size: a
/// submission that does not match, or does not fit, is refused whole with its own code, and the log goes on.
@Suite(.timeLimit(.minutes(1))) struct SubmissionCheckTests {
    private func refusal(_ log: WriteAheadLog, count: Int, totalBytes: Int,
                         records: [[UInt8]]) -> WALError? {
        do {
            _ = try log.tryAppend(count: count, totalBytes: totalBytes, records: { add in
                for r in records { r.withUnsafeBytes { add($0) } }
            }, completion: { _ in Issue.record("a refused submission must not complete") })
            return nil
        } catch {
            return error
        }
    }

    @Test func mismatchedOrOversizedSubmissionsAreRefusedWhole() async throws {
        let dir = TemporaryDirectory()
        let options = smallOptions()
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        let small = [UInt8](repeating: 1, count: 10)
        // Fewer or more records than declared; the right count with the wrong size.
        #expect(refusal(log, count: 2, totalBytes: 14, records: [small])?.code == .invalidArgument)
        #expect(refusal(log, count: 1, totalBytes: 14, records: [small, small])?.code == .invalidArgument)
        #expect(refusal(log, count: 1, totalBytes: 100, records: [small])?.code == .invalidArgument)
        #expect(refusal(log, count: 0, totalBytes: 0, records: [])?.code == .invalidArgument)
        // A record over recordBytesMax, even when the caller declares it small.
        let huge = [UInt8](repeating: 2, count: options.recordBytesMax + 1)
        #expect(refusal(log, count: 2, totalBytes: 28, records: [small, huge])?.code == .recordTooLarge)
        // A submission larger than the pending buffer.
        #expect(refusal(log, count: 1, totalBytes: options.pendingBytesMax + 1, records: [small])?.code == .recordTooLarge)
        // None of it was appended: the next record gets LSN 1 and reads back alone.
        #expect(try await log.append(small) == LSN(1))
        #expect(try log.read(LSN(1)) == small)
        #expect { try log.read(LSN(2)) } throws: { ($0 as? WALError)?.code == .lsnOutOfRange }
    }

    @Test func aMatchingSubmissionIsAppended() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        defer { try? log.close() }
        let records = [[UInt8](repeating: 3, count: 5), [UInt8](repeating: 4, count: 7)]
        let done = AsyncStream<Result<LSN, WALError>>.makeStream()
        let accepted = try log.tryAppend(count: 2, totalBytes: 5 + 7 + 8, records: { add in
            for r in records { r.withUnsafeBytes { add($0) } }
        }, completion: { done.continuation.yield($0) })
        #expect(accepted)
        var results = done.stream.makeAsyncIterator()
        #expect(try await results.next()?.get() == LSN(1))
        #expect(try log.read(LSN(2)) == records[1])
    }

    /// An empty batch is a caller's mistake the log refuses with an error, not a crash of the process.
    @Test func anEmptyBatchIsRefused() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        defer { try? log.close() }
        await expectWALError(.invalidArgument) { try await log.append(contentsOf: [[UInt8]]()) }
        #expect(try await log.append(contentsOf: [[UInt8](repeating: 1, count: 3)]) == LSN(1))
    }

    // MARK: - Records laid out in place

    private func inPlaceRefusal(_ log: WriteAheadLog, sizes: [Int]) -> WALError? {
        do {
            _ = try log.tryAppend(recordSizes: sizes, write: { _, _ in Issue.record("a refused submission is not laid out") },
                                  sink: CompletionSinkTests.RecordingSink(), token: CompletionSinkTests.Token(0))
            return nil
        } catch {
            return error
        }
    }

    /// The sizes alone decide: no record, a negative size, a record over `recordBytesMax` or a submission over
    /// the pending buffer is refused before anything is laid out.
    @Test func recordsLaidOutInPlaceAreMeasuredBeforeAnythingIsWritten() async throws {
        let dir = TemporaryDirectory()
        let options = smallOptions()
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        #expect(inPlaceRefusal(log, sizes: [])?.code == .invalidArgument)
        #expect(inPlaceRefusal(log, sizes: [4, -1])?.code == .invalidArgument)
        #expect(inPlaceRefusal(log, sizes: [4, options.recordBytesMax + 1])?.code == .recordTooLarge)
        let many = Array(repeating: options.recordBytesMax, count: options.pendingBytesMax / options.recordBytesMax + 1)
        #expect(inPlaceRefusal(log, sizes: many)?.code == .recordTooLarge)
        #expect(try await log.append([7]) == LSN(1), "nothing of the refused ones was appended")
    }

    /// Each record is written into a slot of exactly its size, in order, and reads back as written, across
    /// frames cut inside one submission.
    @Test func recordsLaidOutInPlaceReadBackAsWritten() async throws {
        let dir = TemporaryDirectory()
        let options = smallOptions()
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        let records = (0..<12).map { i in [UInt8](repeating: UInt8(i + 1), count: i == 5 ? 0 : options.frameBytesMax / 5 + i) }
        let sink = CompletionSinkTests.RecordingSink()
        let accepted = try log.tryAppend(recordSizes: records.map(\.count), write: { index, slot in
            #expect(slot.count == records[index].count)
            records[index].withUnsafeBytes { slot.copyMemory(from: $0) }
        }, sink: sink, token: CompletionSinkTests.Token(1))
        #expect(accepted)
        try await waitUntil("confirmed") { sink.confirmed == 1 }
        for (i, record) in records.enumerated() { #expect(try log.read(LSN(UInt64(i + 1))) == record) }
        #expect(sink.calls.withLock { $0.flatMap(\.confirms).map(\.lsn) } == [LSN(1)])
    }
}
