import Foundation

/// Runs blocking file work (recovery, a checkpoint's `fdatasync`s, the final close) on a thread of its own and
/// suspends until it is done: a disk that takes tens of milliseconds never holds one of Swift's cooperative
/// threads, which the embedding server shares.
package func onOwnThread<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { c in
        Thread.detachNewThread { c.resume(returning: Result { () throws(E) in try body() }) }
    }
    return try result.get()
}

/// Runs `other` on a thread of its own while `body` runs on the calling thread, and returns both outcomes once
/// both are done: two independent pieces of blocking work (an open's checkpoint read and its log recovery) take
/// as long as the longer of them on a machine with a core to spare.
package func alongside<A: Sendable, B, E: Error, F: Error>(
    _ other: @escaping @Sendable () throws(E) -> A, _ body: () throws(F) -> B
) -> (other: Result<A, E>, body: Result<B, F>) {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox<A, E>()
    Thread.detachNewThread {
        box.result = Result { () throws(E) in try other() }
        done.signal()
    }
    let mine = Result { () throws(F) in try body() }
    done.wait()
    return (box.result!, mine)
}

/// Written by one thread before a semaphore's signal, read by another after its wait (which orders the two).
private final class ResultBox<T, E: Error>: @unchecked Sendable {
    var result: Result<T, E>?
}
