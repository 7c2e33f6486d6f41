import DequeModule
import LogFormat
import DurableLog

/// A snapshot of the derived state covering the log through one LSN, so that opening replays only the log
/// after it. One file, `checkpoint`, replaced crash-safely: written to `checkpoint.tmp`, `fdatasync`ed,
/// renamed over the old one, directory synced. Layout (little-endian):
///
///     0  "QWCP"  4  version (2)  8  covered LSN  16  body length  24  CRC32C  28  zero  32  body
///
/// The CRC32C covers bytes 0..<24 and then the body. The body is the queues, the streams, then (from
/// version 2) the idempotent producers and the pending half messages; version 1 files are still read.
enum Checkpoint {
    static let fileName = "checkpoint"
    static let magic: UInt32 = 0x5043_5751  // "QWCP"
    static let version: UInt32 = 2
    static let headerBytes = 32

    /// The whole checkpoint of `state` in memory (tests, and small states); `write` streams it to its file.
    static func encode(_ state: StoreState) -> [UInt8] {
        var w = ByteWriter(capacity: headerBytes + 64 + state.queues.count * 128)
        w.bytes.append(contentsOf: repeatElement(0, count: headerBytes))
        encodeBody(state, into: &w)
        var bytes = w.bytes
        let bodyCount = bytes.count - headerBytes
        let bodyCRC = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[headerBytes...])) }
        let head = header(lsn: state.appliedLSN, bodyCount: bodyCount, bodyCRC: bodyCRC)
        bytes.replaceSubrange(0..<headerBytes, with: head)
        return bytes
    }

    /// The body after the header: the queues, the streams, the idempotent producers, the half messages.
    private static func encodeBody<W: FieldWriter>(_ state: StoreState, into w: inout W) {
        precondition(state.openTransactions.isEmpty, "a checkpoint is taken between submissions")
        w.u32(UInt32(state.queues.count))
        for q in state.queues.values.sorted(by: { $0.id < $1.id }) {
            w.u64(q.id)
            w.blob(StoreRecord.declareQueue(name: q.name, options: q.options).encode())
            w.u64(q.deadLettered)
            writeEntries(q.returned, to: &w)
            writeEntries(q.ready, to: &w)
            w.u64(UInt64(q.unacked.count))
            for (_, u) in q.unacked.sorted(by: { $0.key < $1.key }) {
                writeEntry(u.entry, to: &w)
                w.u32(u.consumer)
            }
        }
        w.u32(UInt32(state.streams.count))
        for s in state.streams.values.sorted(by: { $0.id < $1.id }) {
            w.u64(s.id)
            w.blob(StoreRecord.declareStream(name: s.name, options: s.options).encode())
            w.u64(s.firstOffset)
            w.u64(UInt64(s.entries.count))
            for e in s.entries {
                w.u64(e.lsn)
                w.u32(e.bytes)
                w.i64(e.time)
            }
            w.u32(UInt32(s.groups.count))
            for (group, offset) in s.groups.sorted(by: { $0.key < $1.key }) {
                w.string(group)
                w.u64(offset)
            }
        }
        w.u32(UInt32(state.producers.count))
        for p in state.producers.values.sorted(by: { $0.id < $1.id }) {
            w.u64(p.id)
            w.string(p.name)
            w.u32(p.epoch)
            w.i64(p.lastActive)
            w.u32(UInt32(p.targets.count))
            for (target, last) in p.targets.sorted(by: { $0.key < $1.key }) {
                w.u64(target)
                w.u64(last.sequence)
                w.u64(last.result)
            }
        }
        w.u64(UInt64(state.halfMessages.count))
        for (_, h) in state.halfMessages.sorted(by: { $0.key < $1.key }) {
            w.u64(h.queue)
            writeEntry(h.entry, to: &w)
            w.i64(h.preparedAt)
            w.u16(h.checks)
            w.i64(h.lastCheckAt)
        }
    }

    /// The 32-byte header of a body of `bodyCount` bytes whose own CRC32C (from 0) is `bodyCRC`: the file's
    /// checksum covers the header's first 24 bytes, then the body, so it is the two joined.
    private static func header(lsn: UInt64, bodyCount: Int, bodyCRC: UInt32) -> [UInt8] {
        var head = [UInt8](repeating: 0, count: headerBytes)
        head.withUnsafeMutableBytes { b in
            b.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            b.storeBytes(of: version.littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: lsn.littleEndian, toByteOffset: 8, as: UInt64.self)
            b.storeBytes(of: UInt64(bodyCount).littleEndian, toByteOffset: 16, as: UInt64.self)
            #if QUEUE_BROKEN_CHECKPOINT_CRC_BODY_ONLY  // BROKEN ON PURPOSE (harness check builds only)
            let crc = bodyCRC
            #else
            let crc = CRC32C.combine(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<24])), bodyCRC,
                                     secondLength: bodyCount)
            #endif
            b.storeBytes(of: crc.littleEndian, toByteOffset: 24, as: UInt32.self)
        }
        return head
    }

    /// CRC32C of the header's first 24 bytes and the body.
    private static func checksum(_ file: UnsafeRawBufferPointer) -> UInt32 {
        let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: file[0..<24]))
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: file[headerBytes...]), continuing: head)
    }

    private static func writeEntries<W: FieldWriter>(_ entries: ChunkedDeque<MessageEntry>, to w: inout W) {
        w.u64(UInt64(entries.count))
        for e in entries { writeEntry(e, to: &w) }
    }

    private static func writeEntry<W: FieldWriter>(_ e: MessageEntry, to w: inout W) {
        w.u64(e.id)
        w.u64(e.bodyLSN)
        w.u32(e.bodyBytes)
        w.u16(e.deliveries)
        w.u8(e.deathReason)
    }

    /// The LSN a checkpoint's header says it covers (the rest of the file unchecked).
    static func coveredLSN(_ bytes: [UInt8]) throws(ByteReader.Malformed) -> UInt64 {
        try keepingType(ByteReader.Malformed.self) {
            try bytes.withUnsafeBytes { raw throws(ByteReader.Malformed) in
                var header = ByteReader(raw)
                guard try header.u32() == magic else { throw .init(description: "not a checkpoint (bad magic)") }
                _ = try header.u32()
                return try header.u64()
            }
        }
    }

    /// The LSN the checkpoint file's header says it covers, read from its first 32 bytes alone (nothing checked
    /// but the magic): 0 when there is no checkpoint or the header cannot be read. `load` is what decides.
    static func peekCoveredLSN(directory: String, fileSystem: any FileSystem) -> UInt64 {
        let path = "\(directory)/\(fileName)"
        guard let fd = try? fileSystem.open(path, writable: false, create: false) else { return 0 }
        defer { fileSystem.close(fd) }
        var head = [UInt8](repeating: 0, count: headerBytes)
        let n = (try? typedWAL { try head.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: 0, path: path) } }) ?? 0
        guard n == headerBytes else { return 0 }
        return (try? coveredLSN(head)) ?? 0
    }

    /// The checkpoint file's size in bytes, 0 when there is none (or it cannot be read: `load` is what decides).
    static func fileBytes(directory: String, fileSystem: any FileSystem) -> Int {
        let path = "\(directory)/\(fileName)"
        guard let fd = try? fileSystem.open(path, writable: false, create: false) else { return 0 }
        defer { fileSystem.close(fd) }
        return (try? fileSystem.size(fd, path: path)) ?? 0
    }

    /// What the 32-byte header says.
    private struct Header {
        var version: UInt32
        var lsn: UInt64
        var bodyCount: UInt64
        var crc: UInt32
    }

    /// Checks and reads the header (`bytes` at least `headerBytes`), and that the body is `bodyBytes` long.
    private static func header(_ bytes: UnsafeRawBufferPointer, bodyBytes: Int) throws(ByteReader.Malformed) -> Header {
        var header = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, headerBytes)]))
        guard try header.u32() == magic else { throw .init(description: "not a checkpoint (bad magic)") }
        let v = try header.u32()
        guard v == 1 || v == version else {
            throw .init(description: "checkpoint version \(v) (this build reads 1 and \(version))")
        }
        let lsn = try header.u64()
        let bodyCount = try header.u64()
        let crc = try header.u32()
        guard try header.u32() == 0 else { throw .init(description: "non-zero reserved header bytes") }
        guard bodyCount == UInt64(bodyBytes) else {
            throw .init(description: "body of \(bodyBytes) bytes, header says \(bodyCount) (torn write?)")
        }
        return Header(version: v, lsn: lsn, bodyCount: bodyCount, crc: crc)
    }

    /// Decodes a whole checkpoint held in memory (its checksum first).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ByteReader.Malformed) -> StoreState {
        let h = try header(bytes, bodyBytes: bytes.count - headerBytes)
        guard checksum(bytes) == h.crc else { throw .init(description: "checksum mismatch") }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[headerBytes...]))
        return try decodeBody(&r, version: h.version, lsn: h.lsn)
    }

    /// Decodes the checkpoint file in `directory` through a window (the whole file is never in memory at once):
    /// one pass checks the checksum, a second decodes; nil when there is none.
    ///
    /// - Throws: `Malformed` for a damaged file (in `.failure`), a `WALError` for one that cannot be read.
    static func load(directory: String, fileSystem: any FileSystem,
                     windowBytes: Int = 1 << 20) throws(WALError) -> Result<StoreState, ByteReader.Malformed>? {
        guard try fileSystem.list(directory).contains(fileName) else { return nil }
        return try load(path: "\(directory)/\(fileName)", fileSystem: fileSystem, windowBytes: windowBytes)
    }

    /// `load` of a checkpoint file at any path (a leader's, received by a follower before it takes its place).
    static func load(path: String, fileSystem: any FileSystem,
                     windowBytes: Int = 1 << 20) throws(WALError) -> Result<StoreState, ByteReader.Malformed> {
        let fd = try fileSystem.open(path, writable: false, create: false)
        defer { fileSystem.close(fd) }
        let size = try fileSystem.size(fd, path: path)
        var head = [UInt8](repeating: 0, count: headerBytes)
        let n = try typedWAL { try head.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: 0, path: path) } }
        let h: Header
        do throws(ByteReader.Malformed) {
            h = try keepingType(ByteReader.Malformed.self) {
                try head.withUnsafeBytes { raw in
                    try header(UnsafeRawBufferPointer(rebasing: raw[0..<n]), bodyBytes: size - headerBytes)
                }
            }
        } catch {
            return .failure(error)
        }
        let seed = head.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<24])) }
        func reader() -> FileByteReader {
            FileByteReader(fileSystem: fileSystem, fd: fd, path: path, from: headerBytes, count: size - headerBytes,
                           crcSeed: seed, windowBytes: windowBytes)
        }
        // The checksum first, in a pass of its own: no byte is decoded before it is known intact (a decode of
        // damaged bytes could reach a check that stops the process instead of an error).
        var check = reader()
        check.checksumTheRest()
        if let ioError = check.ioError { throw ioError }
        #if QUEUE_BROKEN_CHECKPOINT_CRC_UNCHECKED  // BROKEN ON PURPOSE (harness check builds only)
        let crcMatches = true
        #else
        let crcMatches = check.crc == h.crc
        #endif
        guard crcMatches else { return .failure(.init(description: "checksum mismatch")) }
        var r = reader()
        let decoded: Result<StoreState, ByteReader.Malformed>
        do throws(ByteReader.Malformed) {
            decoded = .success(try decodeBody(&r, version: h.version, lsn: h.lsn))
        } catch {
            decoded = .failure(error)
        }
        if let ioError = r.ioError { throw ioError }
        return decoded
    }

    /// Decodes the body after the header.
    private static func decodeBody<R: FieldReader>(_ r: inout R, version v: UInt32,
                                                   lsn: UInt64) throws(ByteReader.Malformed) -> StoreState {
        var state = StoreState()
        state.appliedLSN = lsn
        for _ in 0..<(try r.u32()) {
            let id = try r.u64()
            guard case .declareQueue(let name, let options) = try embeddedRecord(&r) else {
                throw .init(description: "a queue without its declaration")
            }
            var q = QueueIndex(id: id, name: name, options: options)
            q.deadLettered = try r.u64()
            q.returned = try readEntries(&r).entries
            let (ready, inIDOrder) = try readEntries(&r)
            q.replaceReady(with: ready, inIDOrder: inIDOrder)
            let unacked = try r.u64()
            for _ in 0..<unacked {
                let e = try readEntry(&r)
                q.unacked[e.id] = (e, try r.u32())
            }
            q.forEachEntry { q.liveBytes += Int($0.bodyBytes) }
            state.queues[id] = q
            state.queueIDs[name] = id
        }
        for _ in 0..<(try r.u32()) {
            let id = try r.u64()
            guard case .declareStream(let name, let options) = try embeddedRecord(&r) else {
                throw .init(description: "a stream without its declaration")
            }
            var s = StreamIndex(id: id, name: name, options: options)
            s.firstOffset = try r.u64()
            for _ in 0..<(try r.u64()) {
                let e = StreamIndex.Entry(lsn: try r.u64(), bytes: try r.u32(), time: try r.i64())
                s.entries.append(e)
                s.bytes += Int(e.bytes)
            }
            for _ in 0..<(try r.u32()) {
                let group = try r.string()
                s.groups[group] = try r.u64()
            }
            state.streams[id] = s
            state.streamIDs[name] = id
        }
        if v >= 2 {
            for _ in 0..<(try r.u32()) {
                var p = ProducerState(id: try r.u64(), name: try r.string(), epoch: try r.u32(), lastActive: try r.i64())
                for _ in 0..<(try r.u32()) {
                    p.targets[try r.u64()] = .init(sequence: try r.u64(), result: try r.u64())
                }
                state.producers[p.id] = p
                state.producerIDs[p.name] = p.id
            }
            for _ in 0..<(try r.u64()) {
                let h = HalfMessageEntry(queue: try r.u64(), entry: try readEntry(&r), preparedAt: try r.i64(),
                                         checks: try r.u16(), lastCheckAt: try r.i64())
                state.halfMessages[h.entry.id] = h
            }
        }
        try r.expectEnd()
        return state
    }

    /// Declarations are stored as their record's encoding, length-prefixed.
    private static func embeddedRecord<R: FieldReader>(_ r: inout R) throws(ByteReader.Malformed) -> StoreRecord {
        let raw = try r.blob()
        return try keepingType(ByteReader.Malformed.self) { try raw.withUnsafeBytes { try StoreRecord.decode($0) } }
    }

    /// Entries are fixed-size (23 bytes): bounds are checked once for the whole run, then decoded in a tight
    /// loop (a checkpoint of ten million messages must load in well under a second).
    /// Also says whether the entries are in id order (seen as they are decoded: a second pass over a million
    /// would cost the open milliseconds).
    private static func readEntries<R: FieldReader>(_ r: inout R) throws(ByteReader.Malformed)
        -> (entries: ChunkedDeque<MessageEntry>, inIDOrder: Bool) {
        let n = try r.u64()
        guard n <= UInt64(r.remaining / entryBytes) else { throw .init(description: "an entry count longer than the file") }
        var d = ChunkedDeque<MessageEntry>()
        // In runs as long as the reader hands out at once (all of them from memory; a window's worth from a file).
        let perRun = max(1, r.rawBytesMax / entryBytes)
        var left = Int(n)
        var inIDOrder = true
        var previousID: UInt64?
        while left > 0 {
            let count = min(left, perRun)
            let raw = try r.raw(count * entryBytes)
            for i in 0..<count {
                let at = i * entryBytes
                let id = raw.loadLE(at, UInt64.self)
                if let previousID, id <= previousID { inIDOrder = false }
                previousID = id
                d.append(MessageEntry(id: id, bodyLSN: raw.loadLE(at + 8, UInt64.self),
                                      bodyBytes: raw.loadLE(at + 16, UInt32.self), deliveries: raw.loadLE(at + 20, UInt16.self),
                                      deathReason: raw[at + 22]))
            }
            left -= count
        }
        return (d, inIDOrder)
    }

    private static let entryBytes = 23

    private static func readEntry<R: FieldReader>(_ r: inout R) throws(ByteReader.Malformed) -> MessageEntry {
        MessageEntry(id: try r.u64(), bodyLSN: try r.u64(), bodyBytes: try r.u32(), deliveries: try r.u16(),
                     deathReason: try r.u8())
    }

    // MARK: - Files

    /// Writes a checkpoint of `state` as the new checkpoint file, crash-safely, streamed through a 1 MiB buffer
    /// (a checkpoint of ten million queued messages is about 230 MB: never held in memory whole). The body goes
    /// out first, synced every 4 MiB (one flush of tens of megabytes held the device, and the log's syncs
    /// behind it, for as long), then the header, whose checksum joins its own bytes' with the body's.
    /// Returns the file's size in bytes.
    @discardableResult
    static func write(_ state: StoreState, directory: String, fileSystem: any FileSystem, windowBytes: Int = 1 << 20,
                      syncEveryBytes: Int = 4 << 20) throws(WALError) -> Int {
        var size = 0
        try SmallFile.replace(name: fileName, directory: directory, fileSystem: fileSystem,
                              syncDirectory: syncsDirectory) { fd, path throws(WALError) in
            var body = FileByteWriter(fileSystem: fileSystem, fd: fd, path: path, from: headerBytes,
                                      windowBytes: windowBytes, syncEveryBytes: syncEveryBytes)
            encodeBody(state, into: &body)
            try body.finish()
            let head = header(lsn: state.appliedLSN, bodyCount: body.count, bodyCRC: body.crc)
            try typedWAL { try head.withUnsafeBytes { try fileSystem.write(fd, $0, at: 0, path: path) } }
            try fileSystem.dataSync(fd, path: path)
            size = headerBytes + body.count
        }
        return size
    }

    /// Writes checkpoint bytes made elsewhere (`encode`) as the new checkpoint file, crash-safely.
    static func write(_ bytes: [UInt8], directory: String, fileSystem: any FileSystem) throws(WALError) {
        try SmallFile.replace(bytes, name: fileName, directory: directory, fileSystem: fileSystem,
                              syncDirectory: syncsDirectory, syncEveryBytes: 4 << 20)
    }

    #if QUEUE_BROKEN_CHECKPOINT_NO_DIRECTORY_SYNC  // BROKEN ON PURPOSE (harness check builds only)
    private static let syncsDirectory = false
    #else
    private static let syncsDirectory = true
    #endif

    /// The checkpoint's bytes, or nil when there is none.
    static func read(directory: String, fileSystem: any FileSystem) throws(WALError) -> [UInt8]? {
        try SmallFile.read(name: fileName, directory: directory, fileSystem: fileSystem)
    }
}

extension UnsafeRawBufferPointer {
    fileprivate func loadLE<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
