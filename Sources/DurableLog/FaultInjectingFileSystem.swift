import Dispatch
import Synchronization

/// A file system that passes every call to a real one, except those a test told it to fail. Test rigging:
/// `package` access, visible to this package's tests and benchmark only.
/// Used by the failure-injection tests: EIO or ENOSPC on the n-th write, sync, allocation, rename, ...
package final class FaultInjectingFileSystem: FileSystem {
    package enum Operation: String, Sendable, CaseIterable {
        case write, dataSync, allocate, rename, remove, syncDirectory, open
    }

    package struct Fault: Sendable {
        package var operation: Operation
        /// How many calls of `operation` succeed before the fault fires.
        package var after: Int
        package var errno: Int32
        /// Keep failing every later call too (a dead disk), or fail once.
        package var sticky: Bool
        package init(_ operation: Operation, after: Int = 0, errno: Int32 = Platform.Errno.ioError, sticky: Bool = true) {
            self.operation = operation
            self.after = after
            self.errno = errno
            self.sticky = sticky
        }
    }

    private struct State {
        var faults: [Fault] = []
        var calls: [Operation: Int] = [:]
        var fired: [Operation: Int] = [:]
        var holdingSyncs = false
        /// Only syncs of files whose path ends so are held (nil: all).
        var holdSuffix: String?
        /// Syncs waiting at the gate, oldest first: each with its own semaphore and the errno it will fail
        /// with when released (nil: it goes on to the real sync).
        var held: [HeldSync] = []
        var syncsCompleted = 0
        /// Reads of files whose path ends so wait at their own gate until released (nil: none are held).
        var holdReadSuffix: String?
        var heldReads: [DispatchSemaphore] = []
    }

    private final class HeldSync: @unchecked Sendable {
        let gate = DispatchSemaphore(value: 0)
        var failure: Int32?
    }

    private let base: any FileSystem
    private let state = Mutex(State())
    /// Signalled once per `fdatasync` that starts waiting at the gate.
    private let syncArrived = DispatchSemaphore(value: 0)
    /// Signalled once per read that starts waiting at its gate.
    private let readArrived = DispatchSemaphore(value: 0)

    package init(base: any FileSystem = PosixFileSystem()) { self.base = base }

    package func inject(_ fault: Fault) { state.withLock { $0.faults.append(fault) } }
    /// Removes every injected fault (the disk is healthy again).
    package func clearFaults() { state.withLock { $0.faults.removeAll() } }
    package func calls(_ operation: Operation) -> Int { state.withLock { $0.calls[operation, default: 0] } }
    package func firedCount(_ operation: Operation) -> Int { state.withLock { $0.fired[operation, default: 0] } }

    private func check(_ operation: Operation, path: String) throws(WALError) {
        let failure: Int32? = state.withLock { s in
            let n = s.calls[operation, default: 0]
            s.calls[operation] = n + 1
            for (i, fault) in s.faults.enumerated() where fault.operation == operation && n >= fault.after {
                if !fault.sticky { s.faults.remove(at: i) }
                s.fired[operation, default: 0] += 1
                return fault.errno
            }
            return nil
        }
        if let failure { throw .io("\(operation.rawValue) (injected)", path: path, errno: failure) }
    }

    package func open(_ path: String, writable: Bool, create: Bool) throws(WALError) -> Int32 {
        if writable { try check(.open, path: path) }
        return try base.open(path, writable: writable, create: create)
    }
    package func close(_ fd: Int32) { base.close(fd) }
    package func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(WALError) {
        try check(.write, path: path)
        try base.write(fd, bytes, at: offset, path: path)
    }
    package func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(WALError) -> Int {
        let gate: DispatchSemaphore? = state.withLock { s in
            guard let suffix = s.holdReadSuffix, path.hasSuffix(suffix) else { return nil }
            let g = DispatchSemaphore(value: 0)
            s.heldReads.append(g)
            return g
        }
        if let gate {
            readArrived.signal()
            gate.wait()
        }
        return try base.read(fd, into: buffer, at: offset, path: path)
    }

    /// From now on every read of a file whose path ends with `pathSuffix` waits (holding its caller's thread,
    /// as a read from a slow disk would) until `releaseReads()`.
    package func holdReads(pathSuffix: String) { state.withLock { $0.holdReadSuffix = pathSuffix } }

    /// Waits until a read is held at its gate; false if none arrived within `seconds`.
    package func waitForHeldRead(seconds: Double) -> Bool {
        readArrived.wait(timeout: .now() + seconds) == .success
    }

    /// Lets every held read go on, and stops holding new ones.
    package func releaseReads() {
        let held = state.withLock { s in
            s.holdReadSuffix = nil
            defer { s.heldReads.removeAll() }
            return s.heldReads
        }
        for g in held { g.signal() }
    }
    package func dataSync(_ fd: Int32, path: String) throws(WALError) {
        let held: HeldSync? = state.withLock { s in
            guard s.holdingSyncs, s.holdSuffix.map({ path.hasSuffix($0) }) ?? true else { return nil }
            let h = HeldSync()
            s.held.append(h)
            return h
        }
        if let held {
            syncArrived.signal()
            held.gate.wait()
            if let failure = held.failure {
                state.withLock { $0.syncsCompleted += 1 }
                throw .io("fdatasync (injected, released failing)", path: path, errno: failure)
            }
        }
        defer { state.withLock { $0.syncsCompleted += 1 } }
        try check(.dataSync, path: path)
        try base.dataSync(fd, path: path)
    }

    /// From now on every `fdatasync` waits (holding its caller's thread, as a slow disk would) until
    /// released (`releaseSyncs()`, or one at a time with `releaseOldestHeldSync`).
    /// `pathSuffix` holds only the syncs of matching files (".wal": the log's commits, not the zero-fill of a
    /// segment being prepared).
    package func holdSyncs(pathSuffix: String? = nil) {
        state.withLock { s in
            s.holdingSyncs = true
            s.holdSuffix = pathSuffix
        }
    }

    /// New syncs pass the gate again; those already held stay held.
    package func stopHoldingSyncs() { state.withLock { $0.holdingSyncs = false } }

    /// Waits until an `fdatasync` is held at the gate; false if none arrived within `seconds`.
    package func waitForHeldSync(seconds: Double) -> Bool {
        syncArrived.wait(timeout: .now() + seconds) == .success
    }

    /// Lets the oldest held `fdatasync` go on, or return `failing` (an errno, as a write-back error would)
    /// without syncing. False when none is held.
    @discardableResult
    package func releaseOldestHeldSync(failing: Int32? = nil) -> Bool {
        guard let h = state.withLock({ s in s.held.isEmpty ? nil : s.held.removeFirst() }) else { return false }
        h.failure = failing
        h.gate.signal()
        return true
    }

    /// Lets every held `fdatasync` go on, and stops holding new ones.
    package func releaseSyncs() {
        let held = state.withLock { s in
            s.holdingSyncs = false
            defer { s.held.removeAll() }
            return s.held
        }
        for h in held { h.gate.signal() }
    }

    /// `fdatasync` calls that returned (successfully or not) so far.
    package var syncsCompleted: Int { state.withLock { $0.syncsCompleted } }

    package func allocate(_ fd: Int32, bytes: Int, path: String) throws(WALError) {
        try check(.allocate, path: path)
        try base.allocate(fd, bytes: bytes, path: path)
    }
    package func size(_ fd: Int32, path: String) throws(WALError) -> Int { try base.size(fd, path: path) }
    package func lockExclusively(_ fd: Int32, path: String) throws(WALError) { try base.lockExclusively(fd, path: path) }
    package func rename(_ from: String, to: String) throws(WALError) {
        try check(.rename, path: from)
        try base.rename(from, to: to)
    }
    package func remove(_ path: String) throws(WALError) {
        try check(.remove, path: path)
        try base.remove(path)
    }
    package func syncDirectory(_ path: String) throws(WALError) {
        try check(.syncDirectory, path: path)
        try base.syncDirectory(path)
    }
    package func createDirectory(_ path: String) throws(WALError) { try base.createDirectory(path) }
    package func list(_ path: String) throws(WALError) -> [String] { try base.list(path) }
}
