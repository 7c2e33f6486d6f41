/// The file-I/O seam: every system call the log makes on files and directories goes through it, so tests
/// can inject errors (`FaultInjectingFileSystem`) or simulate power loss. Each call names its C function.
/// Implementations retry `EINTR` and continue short writes; any other failure throws `WALError.ioFailure`.
public protocol FileSystem: Sendable {
    /// `open(2)`; `create` adds `O_CREAT`, `writable` opens `O_RDWR` instead of `O_RDONLY`.
    func open(_ path: String, writable: Bool, create: Bool) throws(WALError) -> Int32
    /// `close(2)`; errors are ignored (the data was synced before, or it does not matter).
    func close(_ fd: Int32)
    /// `pwrite(2)` of all of `bytes` at `offset`.
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(WALError)
    /// `pread(2)` until `buffer` is full or the file ends; returns the bytes read.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(WALError) -> Int
    /// `fdatasync(2)`.
    func dataSync(_ fd: Int32, path: String) throws(WALError)
    /// `posix_fallocate(3)` (fallocate(2)) of `[0, bytes)`.
    func allocate(_ fd: Int32, bytes: Int, path: String) throws(WALError)
    /// `fstat(2)`'s size.
    func size(_ fd: Int32, path: String) throws(WALError) -> Int
    /// `flock(2)` with `LOCK_EX | LOCK_NB`; throws `.locked` when another holder has it.
    func lockExclusively(_ fd: Int32, path: String) throws(WALError)
    /// `rename(2)`.
    func rename(_ from: String, to: String) throws(WALError)
    /// `unlink(2)`.
    func remove(_ path: String) throws(WALError)
    /// `open(2)` of the directory and `fsync(2)`: makes creates, renames and deletes in it durable.
    func syncDirectory(_ path: String) throws(WALError)
    /// `mkdir(2)`; succeeds when the directory exists.
    func createDirectory(_ path: String) throws(WALError)
    /// The names in a directory (`opendir(3)`), without "." and "..".
    func list(_ path: String) throws(WALError) -> [String]
    /// Whether calls from two threads at once are safe and their order does not matter. The real file system
    /// says yes; a simulated disk that plays a seed's operations in one order says no (the default). A store's
    /// open reads its checkpoint beside the log's recovery only when it may.
    var servesConcurrentCallers: Bool { get }
}

extension FileSystem {
    public var servesConcurrentCallers: Bool { false }
}

/// The real file system.
public struct PosixFileSystem: FileSystem {
    public var servesConcurrentCallers: Bool { true }

    /// The raw calls whose retry loops matter (EINTR, short transfers); replaceable so tests can make
    /// them return EINTR or transfer less than asked.
    struct Syscalls: Sendable {
        var pwrite: @Sendable (Int32, UnsafeRawPointer, Int, Platform.FileOffset) -> Int = { Platform.writeAt($0, $1, $2, $3) }
        var pread: @Sendable (Int32, UnsafeMutableRawPointer, Int, Platform.FileOffset) -> Int = { Platform.readAt($0, $1, $2, $3) }
        var fdatasync: @Sendable (Int32) -> Int32 = { Platform.dataSync($0) }
    }

    let syscalls: Syscalls
    private typealias Errno = Platform.Errno

    /// The real file system: each call goes to the C library (through the log's platform layer).
    public init() { syscalls = Syscalls() }
    init(syscalls: Syscalls) { self.syscalls = syscalls }

    public func open(_ path: String, writable: Bool, create: Bool) throws(WALError) -> Int32 {
        while true {
            let fd = Platform.openFile(path, writable: writable, create: create)
            if fd >= 0 { return fd }
            if Platform.errno != Errno.interrupted { throw .io("open", path: path, errno: Platform.errno) }
        }
    }

    public func close(_ fd: Int32) { Platform.closeFile(fd) }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(WALError) {
        var done = 0
        while done < bytes.count {
            let n = syscalls.pwrite(fd, bytes.baseAddress! + done, bytes.count - done, Platform.FileOffset(offset + done))
            if n > 0 { done += n; continue }
            if n < 0 && Platform.errno == Errno.interrupted { continue }
            throw .io("pwrite", path: path, errno: n == 0 ? Errno.ioError : Platform.errno)
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(WALError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = syscalls.pread(fd, buffer.baseAddress! + done, buffer.count - done, Platform.FileOffset(offset + done))
            if n > 0 { done += n; continue }
            if n == 0 { break }
            if Platform.errno == Errno.interrupted { continue }
            throw .io("pread", path: path, errno: Platform.errno)
        }
        return done
    }

    public func dataSync(_ fd: Int32, path: String) throws(WALError) {
        // EINTR is not retried blindly: fdatasync reports write-back errors once, so a retry after EINTR
        // is safe (no error was consumed), but any other failure is final.
        while syscalls.fdatasync(fd) != 0 {
            if Platform.errno != Errno.interrupted { throw .io("fdatasync", path: path, errno: Platform.errno) }
        }
    }

    public func allocate(_ fd: Int32, bytes: Int, path: String) throws(WALError) {
        while true {
            let r = Platform.allocate(fd, bytes: bytes)  // returns the error; does not set errno
            if r == 0 { return }
            if r == Errno.interrupted { continue }
            if r == Errno.notSupported || r == Errno.invalidArgument { return }  // the zero-fill that follows allocates the blocks anyway
            throw .io("fallocate", path: path, errno: r)
        }
    }

    public func size(_ fd: Int32, path: String) throws(WALError) -> Int {
        guard let size = Platform.fileSize(fd) else { throw .io("fstat", path: path, errno: Platform.errno) }
        return size
    }

    public func lockExclusively(_ fd: Int32, path: String) throws(WALError) {
        while Platform.tryLock(fd) != 0 {
            if Platform.errno == Errno.interrupted { continue }
            if Platform.errno == Errno.wouldBlock {
                throw WALError(.locked, "another process has this log open; close it there first", path: path)
            }
            throw .io("flock", path: path, errno: Platform.errno)
        }
    }

    public func rename(_ from: String, to: String) throws(WALError) {
        if Platform.renameFile(from, to: to) != 0 { throw .io("rename to \(to)", path: from, errno: Platform.errno) }
    }

    public func remove(_ path: String) throws(WALError) {
        if Platform.removeFile(path) != 0 && Platform.errno != Errno.noSuchFileOrDirectory {
            throw .io("unlink", path: path, errno: Platform.errno)
        }
    }

    public func syncDirectory(_ path: String) throws(WALError) {
        let fd = try open(path, writable: false, create: false)
        defer { close(fd) }
        while Platform.directorySync(fd) != 0 {
            if Platform.errno != Errno.interrupted { throw .io("fsync of directory", path: path, errno: Platform.errno) }
        }
    }

    public func createDirectory(_ path: String) throws(WALError) {
        if Platform.makeDirectory(path) != 0 && Platform.errno != Errno.fileExists {
            throw .io("mkdir", path: path, errno: Platform.errno)
        }
    }

    public func list(_ path: String) throws(WALError) -> [String] {
        guard let names = Platform.directoryEntries(path) else { throw .io("opendir", path: path, errno: Platform.errno) }
        return names.filter { $0 != "." && $0 != ".." }
    }
}

extension FileSystem {
    /// Takes the writer's lock, retrying for up to 100 ms: a process that forked just as the previous holder
    /// closed the lock file can hold a copy of its descriptor until it execs (close-on-exec). Then `.locked`.
    func lockExclusivelySoon(_ fd: Int32, path: String) throws(WALError) {
        var attempts = 0
        while true {
            do {
                try lockExclusively(fd, path: path)
                return
            } catch where error.code == .locked && attempts < 50 {
                attempts += 1
                Platform.sleep(microseconds: 2000)
            }
        }
    }
}

extension FileSystem {
    /// Creates `path` if it does not exist yet and then fsyncs its parent directory, so that a power cut
    /// cannot lose the new directory's entry (and with it every file synced inside it).
    public func createDirectoryDurably(_ path: String) throws(WALError) {
        if (try? list(path)) != nil { return }
        try createDirectory(path)
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let parent: String
        if let slash = trimmed.lastIndex(of: "/") {
            parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        } else {
            parent = "."
        }
        try syncDirectory(parent)
    }
}
