import CSQLite
import Foundation
import Histogram
import Synchronization

/// SQLite side by side (the system's libsqlite3; WAL journal, `synchronous=FULL`, so a commit returns after
/// the WAL's `fdatasync`), on the same messages and the same disk. One message is one row
/// `(id INTEGER PRIMARY KEY, body BLOB)`.
/// - `perMessage`: one transaction per message from one caller (concurrency 1).
/// - `batched`: `concurrency` tasks each await their insert; one writer thread commits everything pending as
///   one transaction, then answers them all: the best an application can do with SQLite at that
///   concurrency (group commit done by the application).
struct SQLiteRun {
    enum Shape: String { case perMessage = "per-message", batched }

    var shape: Shape
    var concurrency: Int
    var messagesMax: Int
    var secondsMax: Double

    static var version: String { String(cString: sqlite3_libversion()) }

    func run(messages: MessageSet, directory: String) async throws -> Measurement {
        let path = directory + "/sqlite-\(UUID().uuidString.prefix(8)).db"
        let db = try Database(path: path)
        defer {
            db.close()
            for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        }
        let shared = SharedProgress()
        let writtenBefore = processBytesWritten()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(secondsMax * 1e9)
        var latencies = newHistogram()
        var transactions = 0
        switch shape {
        case .perMessage:
            var i = 0
            while i < messagesMax && monotonicNanoseconds() < deadline {
                let t0 = monotonicNanoseconds()
                try db.insertAll([i], messages: messages)
                let t1 = monotonicNanoseconds()
                _ = latencies.record(t1 - t0)
                shared.lastConfirm.store(t1, ordering: .relaxed)
                i += 1
            }
            transactions = i
        case .batched:
            let writer = BatchingWriter(db: db, messages: messages)
            latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: deadline, shared: shared) { _, i in
                try await writer.insert(i)
            }
            transactions = writer.stop()
        }
        let confirmed = Int(latencies.totalCount)
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        return Measurement(
            scenario: "sqlite \(shape.rawValue) c=\(concurrency)" + messages.label, concurrency: concurrency, codec: "none", syncsInFlight: 1,
            messages: confirmed, seconds: seconds, latencies: latencies,
            recordsPerSync: Double(confirmed) / Double(max(transactions, 1)),
            bytesWrittenPerRecord: Double(processBytesWritten() - writtenBefore) / Double(max(confirmed, 1)),
            cpuSeconds: processCPUSeconds() - cpuStart, messageBytes: messages.size)
    }

    /// One connection and its prepared statements; used from one thread at a time.
    final class Database: @unchecked Sendable {
        private var handle: OpaquePointer?
        private var insert: OpaquePointer?
        private var begin: OpaquePointer?
        private var commit: OpaquePointer?

        init(path: String) throws {
            guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
                throw BenchError("sqlite3_open_v2 \(path) failed")
            }
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=FULL")
            try execute("CREATE TABLE m(id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            insert = try prepare("INSERT INTO m(body) VALUES (?)")
            begin = try prepare("BEGIN")
            commit = try prepare("COMMIT")
        }

        func close() {
            for statement in [insert, begin, commit] { sqlite3_finalize(statement) }
            sqlite3_close_v2(handle)
        }

        /// Inserts messages `indexes` in one transaction; returns after the commit is durable.
        func insertAll(_ indexes: [Int], messages: MessageSet) throws {
            try step(begin)
            try messages.bytes.withUnsafeBytes { bytes in
                for i in indexes {
                    let r = messages.range(i)
                    sqlite3_bind_blob(insert, 1, bytes.baseAddress! + r.lowerBound, Int32(r.count), nil)  // nil: SQLITE_STATIC
                    try step(insert)
                }
            }
            try step(commit)
        }

        private func step(_ statement: OpaquePointer?) throws {
            guard sqlite3_step(statement) == SQLITE_DONE else {
                throw BenchError("sqlite3_step: \(String(cString: sqlite3_errmsg(handle)))")
            }
            sqlite3_reset(statement)
        }

        private func execute(_ sql: String) throws {
            guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else {
                throw BenchError("\(sql): \(String(cString: sqlite3_errmsg(handle)))")
            }
        }

        private func prepare(_ sql: String) throws -> OpaquePointer? {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else {
                throw BenchError("prepare \(sql): \(String(cString: sqlite3_errmsg(handle)))")
            }
            return statement
        }
    }

    /// The application-side group commit: callers queue their insert and wait; a thread takes everything
    /// queued, commits it as one transaction, and resumes the callers.
    final class BatchingWriter: Sendable {
        private struct State {
            var pending: [(Int, UnsafeContinuation<Void, any Error>)] = []
            var stopped = false
            var transactions = 0
        }

        private let state = Mutex(State())
        private let wake = DispatchSemaphore(value: 0)
        private let done = DispatchSemaphore(value: 0)

        init(db: Database, messages: MessageSet) {
            Thread.detachNewThread { [self] in
                while true {
                    wake.wait()
                    let (batch, stopped) = state.withLock { s in
                        defer { s.pending.removeAll(keepingCapacity: true) }
                        return (s.pending, s.stopped)
                    }
                    if !batch.isEmpty {
                        let result = Result { try db.insertAll(batch.map(\.0), messages: messages) }
                        state.withLock { $0.transactions += 1 }
                        for (_, c) in batch { c.resume(with: result) }
                    }
                    if stopped { break }
                }
                done.signal()
            }
        }

        func insert(_ message: Int) async throws {
            try await withUnsafeThrowingContinuation { c in
                let first = state.withLock { s in
                    s.pending.append((message, c))
                    return s.pending.count == 1
                }
                if first { wake.signal() }
            }
        }

        /// Ends the writer thread; returns how many transactions it committed.
        func stop() -> Int {
            state.withLock { $0.stopped = true }
            wake.signal()
            done.wait()
            return state.withLock { $0.transactions }
        }
    }
}

/// Bytes this process passed to write(2) and friends so far (`wchar` of /proc/self/io).
func processBytesWritten() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}
