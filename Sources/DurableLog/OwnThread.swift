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
