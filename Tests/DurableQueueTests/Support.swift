import Foundation
import Synchronization
import Testing
import WALSimulation
import DurableLog
@testable import DurableQueue

/// A fresh directory under the system temporary directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "queue-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Small segments so that tests roll, checkpoint and reclaim quickly; maintenance off unless asked for.
func testOptions(segmentBytes: Int = 256 << 10, maintenance: Duration = .seconds(3600)) -> StoreOptions {
    var o = StoreOptions()
    o.logger = quietLogger
    o.log.segmentBytes = segmentBytes
    o.log.frameBytesMax = 32 << 10
    o.log.recordBytesMax = (32 << 10) - 4
    o.log.pendingBytesMax = 256 << 10
    o.checkpointEveryBytes = 1 << 40
    o.maintenanceInterval = maintenance
    return o
}

func text(_ s: String) -> Message { Message(body: Array(s.utf8)) }

extension Delivery {
    var text: String { String(decoding: message.body, as: UTF8.self) }
}

/// The next `n` deliveries of a consumer (fails the test by throwing when the stream ends first, or when
/// they do not all arrive within `seconds`: a lost wake-up fails fast instead of hanging the run).
func take(_ n: Int, from consumer: Consumer, within seconds: Double = 30) async throws -> [Delivery] {
    try await withDeadline(seconds, "\(n) deliveries") {
        var result: [Delivery] = []
        var iterator = consumer.deliveries.makeAsyncIterator()
        while result.count < n {
            guard let d = try await iterator.next() else { throw TestFailure("deliveries ended after \(result.count)") }
            result.append(d)
        }
        return result
    }
}

/// `body`'s result, or a `TestFailure` naming `what` once `seconds` passed. The body is not waited for after
/// the deadline (a wait that ignores cancellation must not hang the test).
func withDeadline<T: Sendable>(_ seconds: Double, _ what: String,
                               _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let settled = Mutex(false)
    return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let first = { @Sendable (result: Result<T, any Error>) in
            if settled.withLock({ s in defer { s = true }; return !s }) { c.resume(with: result) }
        }
        Task { first(await Result(catching: { try await body() })) }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            first(.failure(TestFailure("\(what) did not happen within \(seconds) s")))
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// Waits (polling, up to `seconds`) until `condition` holds.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { throw TestFailure("condition not met within \(seconds) s") }
        try await Task.sleep(for: .milliseconds(5))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Stops a store the way a crash would: no final checkpoint, nothing more written (the log is closed, so
/// what it confirmed is on disk and what it did not is not).
func dropWithoutClosing(_ store: QueueStore) throws {
    store.maintenanceTask.withLock { $0?.cancel() }
    try store.log.close()
}

/// Every ready message of a queue, without acking (they go back when the consumer is dropped).
func drain(_ queue: String, _ store: QueueStore) async throws -> [Delivery] {
    guard let info = store.queueInfo(queue), info.ready > 0 else { return [] }
    let consumer = try store.consume(queue: queue, prefetch: info.ready)
    return try await take(info.ready, from: consumer)
}

/// The `QueueError` that `body` throws, after checking its code: the test fails when `body` throws nothing,
/// throws another type, or another code (an expectation that accepts any error passes on the wrong one).
@discardableResult
func expectQueueError<T>(_ code: QueueError.Code, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () throws -> T) -> QueueError? {
    let error = #expect(throws: QueueError.self, comment, sourceLocation: sourceLocation) { _ = try body() }
    #expect(error?.code == code, comment, sourceLocation: sourceLocation)
    return error
}

@discardableResult
func expectQueueError<T>(_ code: QueueError.Code, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () async throws -> T) async -> QueueError? {
    let error = await #expect(throws: QueueError.self, comment, sourceLocation: sourceLocation) { _ = try await body() }
    #expect(error?.code == code, comment, sourceLocation: sourceLocation)
    return error
}
