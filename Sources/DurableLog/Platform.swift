#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The only file of the module that imports the C library: every libc call of the log (and, through the
/// `package` functions, of the queue layer and the simulation) is here, behind a small Swift function named after
/// what it does (its doc names the C call). The package is built and tested on Linux (glibc); the Darwin branches
/// say what a port would need (chiefly `F_FULLFSYNC`, since Darwin's `fsync` does not flush the drive's cache)
/// and are not compiled or tested here.
/// The calls report failure as C does (-1 or an error number, `errno`); retries and error mapping stay with
/// the callers (`PosixFileSystem`), so that a port changes calls, not logic.
package enum Platform {
    // MARK: - errno

    /// The calling thread's `errno`: read it right after the call that failed.
    package static var errno: Int32 { currentErrno() }

    /// The `errno` values the package tests for or makes up (C names in the comments).
    package enum Errno {
        /// `EINTR`
        package static let interrupted = EINTR
        /// `EIO`
        package static let ioError = EIO
        /// `EINVAL`
        package static let invalidArgument = EINVAL
        /// `EOPNOTSUPP`
        package static let notSupported = EOPNOTSUPP
        /// `EWOULDBLOCK`
        package static let wouldBlock = EWOULDBLOCK
        /// `ENOENT`
        package static let noSuchFileOrDirectory = ENOENT
        /// `EEXIST`
        package static let fileExists = EEXIST
        /// `EBADF`
        package static let badFileDescriptor = EBADF
    }

    /// `strerror(3)`: the C library's text for an error number.
    package static func errorDescription(_ code: Int32) -> String { String(cString: strerror(code)) }

    // MARK: - Files

    /// A file offset as `pread`/`pwrite` take it (`off_t`).
    typealias FileOffset = off_t

    /// `open(2)` with `O_CLOEXEC`, `O_RDWR` or `O_RDONLY`, `O_CREAT` when `create`, mode 0644.
    /// -1 and `errno` on failure.
    static func openFile(_ path: String, writable: Bool, create: Bool) -> Int32 {
        var flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        if create { flags |= O_CREAT }
        return open(path, flags, 0o644)
    }

    /// `close(2)`.
    @discardableResult
    static func closeFile(_ fd: Int32) -> Int32 { close(fd) }

    /// `pwrite(2)`: the bytes written, or -1 and `errno`.
    static func writeAt(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, _ offset: FileOffset) -> Int {
        pwrite(fd, bytes, count, offset)
    }

    /// `pread(2)`: the bytes read (0 at the end of the file), or -1 and `errno`.
    static func readAt(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: FileOffset) -> Int {
        pread(fd, buffer, count, offset)
    }

    /// Makes a file's data durable: `fdatasync(2)` on Linux. On Darwin `fsync` leaves the data in the drive's
    /// cache and `fcntl(F_FULLFSYNC)` flushes it; it fails with `ENOTSUP` where the file system cannot (SMB
    /// mounts), and only then does this fall back to `fsync` (as Go's `File.Sync` does): any other failure is
    /// final, since a failed sync is never retried. 0, or -1 and `errno`.
    static func dataSync(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        if fcntl(fd, F_FULLFSYNC) == 0 { return 0 }
        return errno == ENOTSUP ? fsync(fd) : -1
        #else
        return fdatasync(fd)
        #endif
    }

    /// Makes a directory's entries durable (creates, renames, deletes): `fsync(2)` of the directory on Linux,
    /// `fcntl(F_FULLFSYNC)` on Darwin (as in `dataSync`). 0, or -1 and `errno`.
    static func directorySync(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        if fcntl(fd, F_FULLFSYNC) == 0 { return 0 }
        return errno == ENOTSUP ? fsync(fd) : -1
        #else
        return fsync(fd)
        #endif
    }

    /// `posix_fallocate(3)` of `[0, bytes)`: returns the error number (0 on success; it does not set `errno`).
    /// Darwin has no `posix_fallocate`: there it reports `EOPNOTSUPP`, and the zero-fill that follows
    /// allocates the blocks.
    static func allocate(_ fd: Int32, bytes: Int) -> Int32 {
        #if canImport(Darwin)
        return EOPNOTSUPP
        #else
        return posix_fallocate(fd, 0, off_t(bytes))
        #endif
    }

    /// `fstat(2)`'s `st_size`, or nil and `errno`.
    static func fileSize(_ fd: Int32) -> Int? {
        var st = stat()
        if fstat(fd, &st) != 0 { return nil }
        return Int(st.st_size)
    }

    /// `flock(2)` with `LOCK_NB`, `LOCK_EX` or (with `shared`) `LOCK_SH`. 0, or -1 and `errno`
    /// (`EWOULDBLOCK` when another holder has it).
    static func tryLock(_ fd: Int32, shared: Bool = false) -> Int32 {
        flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB)
    }

    /// `flock(2)` with `LOCK_UN`.
    @discardableResult
    static func unlock(_ fd: Int32) -> Int32 { flock(fd, LOCK_UN) }

    /// `rename(2)`. 0, or -1 and `errno`.
    static func renameFile(_ from: String, to: String) -> Int32 { rename(from, to) }

    /// `unlink(2)`. 0, or -1 and `errno`.
    static func removeFile(_ path: String) -> Int32 { unlink(path) }

    /// `mkdir(2)` with mode 0755. 0, or -1 and `errno`.
    static func makeDirectory(_ path: String) -> Int32 { mkdir(path, 0o755) }

    /// `realpath(3)`: the absolute path with symbolic links, "." and ".." resolved, or nil (and `errno`).
    static func resolvedPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Every name in a directory, "." and ".." included (`opendir(3)`, `readdir(3)`, `closedir(3)`), or nil
    /// and `errno` when it cannot be opened.
    static func directoryEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            names.append(name)
        }
        return names
    }

    // MARK: - Time

    /// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// `clock_gettime(CLOCK_REALTIME)`: the wall clock, seconds since 1970 and the nanoseconds past them.
    package static func wallClock() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec))
    }

    /// `usleep(3)`.
    static func sleep(microseconds: UInt32) { usleep(microseconds) }

    // MARK: - Threads

    /// Names the calling thread in the kernel (a write to `/proc/thread-self/comm`, which keeps 15 bytes;
    /// `pthread_setname_np` is not visible to Swift without `_GNU_SOURCE`): what `top -H`, `perf` and a
    /// debugger show. Foundation's `Thread.name` does not reach the kernel on Linux, so a log thread would
    /// otherwise carry the name of whichever thread started it (a dispatch or cooperative worker's).
    /// Best effort: a system without `/proc` keeps the inherited name.
    package static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #endif
    }

    /// A pthread mutex. A handle, not an owner: whoever creates one calls `destroy()` once, last.
    struct Mutex {
        fileprivate let pointer: UnsafeMutablePointer<pthread_mutex_t>

        /// `pthread_mutex_init`; `adaptive` (`PTHREAD_MUTEX_ADAPTIVE_NP`: spin briefly before sleeping) only
        /// where glibc has it, a default mutex elsewhere.
        init(adaptive: Bool) {
            pointer = .allocate(capacity: 1)
            var attributes = pthread_mutexattr_t()
            pthread_mutexattr_init(&attributes)
            #if canImport(Glibc)
            if adaptive { pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP)) }
            #endif
            precondition(pthread_mutex_init(pointer, &attributes) == 0)
            pthread_mutexattr_destroy(&attributes)
        }

        func destroy() {
            pthread_mutex_destroy(pointer)
            pointer.deallocate()
        }

        /// `pthread_mutex_lock`: 0, or the error number.
        func lock() -> Int32 { pthread_mutex_lock(pointer) }
        /// `pthread_mutex_unlock`: 0, or the error number.
        func unlock() -> Int32 { pthread_mutex_unlock(pointer) }
    }

    /// A pthread condition variable; a handle like `Mutex`.
    struct Condition {
        private let pointer: UnsafeMutablePointer<pthread_cond_t>

        /// `pthread_cond_init`.
        init() {
            pointer = .allocate(capacity: 1)
            precondition(pthread_cond_init(pointer, nil) == 0)
        }

        func destroy() {
            pthread_cond_destroy(pointer)
            pointer.deallocate()
        }

        /// `pthread_cond_wait` with `mutex`, which the caller holds: 0, or the error number.
        func wait(_ mutex: Mutex) -> Int32 { pthread_cond_wait(pointer, mutex.pointer) }
        /// `pthread_cond_signal`.
        func signal() { pthread_cond_signal(pointer) }
        /// `pthread_cond_broadcast`.
        func broadcast() { pthread_cond_broadcast(pointer) }
    }

    // MARK: - Processes (the simulation's test support)

    /// `getenv(3)`.
    package static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// `kill(2)` with `SIGKILL`.
    package static func killProcess(_ pid: Int32) { kill(pid, SIGKILL) }
}

/// The C library's `errno` (at file scope: inside `Platform` the name is `Platform.errno` itself).
private func currentErrno() -> Int32 { errno }
