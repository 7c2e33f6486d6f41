import Synchronization
import DurableLog

/// An in-memory file system that knows what a power loss could take away: per file, the bytes made durable
/// by `fdatasync` and the writes since; per directory, the entries made durable by a directory `fsync` and
/// the creates, renames and deletes since. `crashImage(seed:)` builds a disk as a power cut at this moment
/// could leave it: each unsynced write kept, dropped, cut (its first sectors kept, as in-order writeback
/// leaves it), torn (only some of its 512-byte sectors kept) or garbled, each unsynced directory change kept
/// or lost. After `crash()` every call fails with EIO, so a log running on
/// it can confirm nothing more.
///
/// Deterministic for a seed: the same workload and seed give the same image.
public final class SimulatedDisk: FileSystem {
    /// One file's contents: what is durable, and the writes not yet synced (oldest first).
    struct Inode {
        var durable: [UInt8] = []
        var pending: [(offset: Int, bytes: [UInt8])] = []
        /// The contents as the running system sees them.
        var current: [UInt8] = []
    }

    struct State {
        var inodes: [Int: Inode] = [:]
        var nextInode = 1
        /// Directory entries as the running system sees them, and as they are on disk.
        var names: [String: Int] = [:]
        var durableNames: [String: Int] = [:]
        /// Open descriptors. A new one takes the lowest number free (from 100), as POSIX does, so that a
        /// descriptor used after its close reaches whatever file was opened since, as it would on Linux.
        var descriptors: [Int32: Int] = [:]
        var crashed = false
        /// Counts every mutating call (write, sync, allocate, rename, remove, directory sync, create).
        var operations = 0
        /// When set, the disk crashes (stops) just before this operation.
        var crashBeforeOperation: Int?
        var locks: Set<Int> = []
    }

    let state: Mutex<State>
    private typealias Errno = Platform.Errno

    public init() { state = Mutex(State()) }

    init(state: State) { self.state = Mutex(state) }

    /// Mutating operations performed so far.
    public var operations: Int { state.withLock { $0.operations } }

    /// Makes every later call fail with EIO (the power is gone).
    public func crash() { state.withLock { $0.crashed = true } }

    /// A digest of everything the disk holds (names, and each file's durable and current bytes): two runs of
    /// one seed that end with equal fingerprints left the same bytes behind.
    public var fingerprint: UInt64 {
        state.withLock { s in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
            func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
                for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
            }
            for (name, number) in s.names.sorted(by: { $0.key < $1.key }) {
                mix(name.utf8)
                guard let inode = s.inodes[number] else { continue }
                mix(inode.durable)
                mix(inode.current)
                mix(withUnsafeBytes(of: inode.pending.count) { Array($0) })
            }
            return hash
        }
    }

    /// Crashes automatically just before mutating operation number `n` (0-based) would run.
    public func crash(beforeOperation n: Int) { state.withLock { $0.crashBeforeOperation = n } }

    /// A new disk holding what survives a power loss now, chosen by `seed`.
    public func crashImage(seed: UInt64) -> SimulatedDisk {
        state.withLock { s in
            var rng = SplitMix64(seed: seed)
            var image = State()
            image.nextInode = s.nextInode
            // Directory: durable entries, plus each unsynced change kept or lost as a whole. Changes are
            // not recorded one by one, so per name: the current entry survives with probability 1/2 when it
            // differs from the durable one.
            // Every walk that draws from `rng` goes in sorted order: a dictionary's own order differs from one
            // process (and one instance) to the next, and the seed must choose the same image every time.
            var names = s.durableNames
            for (name, inode) in s.names.sorted(by: { $0.key < $1.key }) where s.durableNames[name] != inode {
                if rng.next() % 2 == 0 { names[name] = inode }
            }
            for name in s.durableNames.keys.sorted() where s.names[name] == nil {
                if rng.next() % 2 == 0 { names[name] = nil }
            }
            image.names = names
            image.durableNames = names
            for (number, inode) in s.inodes.sorted(by: { $0.key < $1.key }) {
                var bytes = inode.durable
                for write in inode.pending {
                    switch rng.next() % 5 {
                    case 0: continue                                   // lost
                    case 1: apply(write.bytes, at: write.offset, to: &bytes)  // kept whole
                    case 4:                                            // cut: written back in order, up to a sector
                        let sectors = (write.offset % 512 + write.bytes.count + 511) / 512
                        let end = min(write.bytes.count, (write.offset / 512 + Int(rng.next() % UInt64(sectors + 1))) * 512 - write.offset)
                        if end > 0 { apply(Array(write.bytes[..<end]), at: write.offset, to: &bytes) }
                    case 2:                                            // torn: some sectors kept
                        var sector = (write.offset / 512) * 512
                        while sector < write.offset + write.bytes.count {
                            let from = max(sector, write.offset), to = min(sector + 512, write.offset + write.bytes.count)
                            if rng.next() % 2 == 0 {
                                apply(Array(write.bytes[(from - write.offset)..<(to - write.offset)]), at: from, to: &bytes)
                            }
                            sector += 512
                        }
                    default:                                           // garbled: the sectors hold noise
                        var noise = write.bytes
                        for i in noise.indices { noise[i] = UInt8(truncatingIfNeeded: rng.next()) }
                        apply(noise, at: write.offset, to: &bytes)
                    }
                }
                image.inodes[number] = Inode(durable: bytes, pending: [], current: bytes)
            }
            return SimulatedDisk(state: image)
        }
    }

    // MARK: - FileSystem

    /// Counts a mutating operation; fails it when the disk has crashed or crashes now.
    private func begin(_ s: inout State, _ what: String, _ path: String) throws(WALError) {
        if let n = s.crashBeforeOperation, s.operations >= n { s.crashed = true }
        if s.crashed { throw WALError(.ioFailure, "\(what) on a crashed disk", path: path, errno: Errno.ioError) }
        s.operations += 1
    }

    public func open(_ path: String, writable: Bool, create: Bool) throws(WALError) -> Int32 {
        try state.withLock { (s) throws(WALError) -> Int32 in
            if s.crashed { throw WALError(.ioFailure, "open on a crashed disk", path: path, errno: Errno.ioError) }
            var number = s.names[path]
            if number == nil {
                guard create else { throw WALError(.ioFailure, "open", path: path, errno: Errno.noSuchFileOrDirectory) }
                try begin(&s, "create", path)
                number = s.nextInode
                s.nextInode += 1
                s.inodes[number!] = Inode()
                s.names[path] = number
            }
            var fd: Int32 = 100
            while s.descriptors[fd] != nil { fd += 1 }
            s.descriptors[fd] = number
            return fd
        }
    }

    public func close(_ fd: Int32) { state.withLock { s in _ = s.descriptors.removeValue(forKey: fd) } }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "pwrite", path)
            guard let number = s.descriptors[fd] else { throw WALError(.ioFailure, "pwrite", path: path, errno: Errno.badFileDescriptor) }
            let data = Array(bytes)
            s.inodes[number]!.pending.append((offset, data))
            apply(data, at: offset, to: &s.inodes[number]!.current)
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(WALError) -> Int {
        try state.withLock { (s) throws(WALError) -> Int in
            if s.crashed { throw WALError(.ioFailure, "pread on a crashed disk", path: path, errno: Errno.ioError) }
            guard let number = s.descriptors[fd] else { throw WALError(.ioFailure, "pread", path: path, errno: Errno.badFileDescriptor) }
            let current = s.inodes[number]!.current
            guard offset < current.count else { return 0 }
            let n = min(buffer.count, current.count - offset)
            current.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            return n
        }
    }

    public func dataSync(_ fd: Int32, path: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "fdatasync", path)
            guard let number = s.descriptors[fd] else { throw WALError(.ioFailure, "fdatasync", path: path, errno: Errno.badFileDescriptor) }
            s.inodes[number]!.durable = s.inodes[number]!.current
            s.inodes[number]!.pending.removeAll()
        }
    }

    public func allocate(_ fd: Int32, bytes: Int, path: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "fallocate", path)
            guard let number = s.descriptors[fd] else { throw WALError(.ioFailure, "fallocate", path: path, errno: Errno.badFileDescriptor) }
            // Extends the file with zeros, durable only once synced (like any write).
            let current = s.inodes[number]!.current.count
            if bytes > current {
                let zeros = [UInt8](repeating: 0, count: bytes - current)
                s.inodes[number]!.pending.append((current, zeros))
                s.inodes[number]!.current += zeros
            }
        }
    }

    public func size(_ fd: Int32, path: String) throws(WALError) -> Int {
        try state.withLock { (s) throws(WALError) -> Int in
            guard let number = s.descriptors[fd] else { throw WALError(.ioFailure, "fstat", path: path, errno: Errno.badFileDescriptor) }
            return s.inodes[number]!.current.count
        }
    }

    public func lockExclusively(_ fd: Int32, path: String) throws(WALError) {}

    public func rename(_ from: String, to: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "rename", from)
            guard let number = s.names.removeValue(forKey: from) else {
                throw WALError(.ioFailure, "rename", path: from, errno: Errno.noSuchFileOrDirectory)
            }
            s.names[to] = number
        }
    }

    public func remove(_ path: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "unlink", path)
            s.names[path] = nil
        }
    }

    public func syncDirectory(_ path: String) throws(WALError) {
        try state.withLock { (s) throws(WALError) in
            try begin(&s, "fsync of directory", path)
            let prefix = path.hasSuffix("/") ? path : path + "/"
            // Only the directory's own entries, not those of directories below it.
            func isChild(_ name: String) -> Bool { name.hasPrefix(prefix) && !name.dropFirst(prefix.count).contains("/") }
            for (name, number) in s.names where isChild(name) { s.durableNames[name] = number }
            for name in s.durableNames.keys where isChild(name) && s.names[name] == nil {
                s.durableNames[name] = nil
            }
        }
    }

    public func createDirectory(_ path: String) throws(WALError) {}

    public func list(_ path: String) throws(WALError) -> [String] {
        state.withLock { s in
            let prefix = path.hasSuffix("/") ? path : path + "/"
            // Sorted, so that a seeded run sees the same order every time (a real directory's is arbitrary).
            return s.names.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
                .filter { !$0.contains("/") }.sorted()
        }
    }
}

private func apply(_ data: [UInt8], at offset: Int, to bytes: inout [UInt8]) {
    if bytes.count < offset + data.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
    bytes.replaceSubrange(offset..<(offset + data.count), with: data)
}

/// splitmix64: the simulation's only source of randomness, so a seed replays a run exactly.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a randomized test: `TEST_SEED` from the environment (to replay a failure), else a fresh one.
/// It is printed with the test's name, so that a failing run's output says how to replay it.
public func testSeed(_ test: String) -> UInt64 {
    var seed = UInt64.random(in: 1...UInt64.max)
    if let text = Platform.environment("TEST_SEED"), let fixed = UInt64(text) { seed = fixed }
    print("\(test): seed \(seed) (TEST_SEED=\(seed) replays it)")
    return seed
}
