/// Little-endian encoding for the store's records and checkpoints. Decoding never traps on bad input:
/// a short or malformed buffer makes `ByteReader` throw, so a damaged checkpoint is reported, not served.
///
/// One layout, three destinations: a `FieldWriter` is where encoded fields go (a growing array, a record's
/// slot in the log's pending batch, or a byte count), so the size a record announces is the size its
/// encoding writes.
package protocol FieldWriter {
    /// Appends raw bytes.
    mutating func put(_ raw: UnsafeRawBufferPointer)
}

extension FieldWriter {
    package mutating func u8(_ v: UInt8) { withUnsafeBytes(of: v) { put($0) } }
    package mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { put($0) } }
    package mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { put($0) } }
    package mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { put($0) } }
    package mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    package mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }

    /// A length-prefixed byte string.
    package mutating func blob(_ v: [UInt8]) {
        u32(UInt32(v.count))
        v.withUnsafeBytes { put($0) }
    }

    package mutating func string(_ v: String) {
        var v = v
        v.withUTF8 { utf8 in
            u32(UInt32(utf8.count))
            put(UnsafeRawBufferPointer(utf8))
        }
    }

    package mutating func headers(_ h: [String: String]) {
        u16(UInt16(h.count))
        guard !h.isEmpty else { return }
        for (key, value) in h.sorted(by: { $0.key < $1.key }) {
            string(key)
            string(value)
        }
    }
}

/// Fields encoded into a growing array.
package struct ByteWriter: FieldWriter {
    package var bytes: [UInt8]

    package init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package mutating func put(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
}

/// Counts the bytes an encoding takes, writing none.
struct ByteCounter: FieldWriter {
    var count = 0
    mutating func put(_ raw: UnsafeRawBufferPointer) { count += raw.count }
}

/// Fields encoded into a buffer of the exact size they take (a record's slot in the log's pending batch).
struct SlotWriter: FieldWriter {
    private let slot: UnsafeMutableRawBufferPointer
    private(set) var offset = 0

    init(_ slot: UnsafeMutableRawBufferPointer) { self.slot = slot }

    var isFull: Bool { offset == slot.count }

    mutating func put(_ raw: UnsafeRawBufferPointer) {
        precondition(raw.count <= slot.count - offset, "a record's encoding ran past the size it announced")
        if raw.count > 0 { (slot.baseAddress! + offset).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        offset += raw.count
    }
}

package struct ByteReader {
    package struct Malformed: Error, CustomStringConvertible {
        package var description: String
        package init(description: String) { self.description = description }
    }

    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var isAtEnd: Bool { offset == bytes.count }
    package var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int) throws(Malformed) -> Int {
        guard n >= 0, n <= bytes.count - offset else {
            throw Malformed(description: "needs \(n) bytes at offset \(offset), has \(bytes.count - offset)")
        }
        defer { offset += n }
        return offset
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws(Malformed) -> T {
        let at = try take(MemoryLayout<T>.size)
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    /// The next `n` bytes, for bulk decoding of fixed-size entries (valid while the input is).
    package mutating func raw(_ n: Int) throws(Malformed) -> UnsafeRawBufferPointer {
        let at = try take(n)
        return UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])
    }

    package mutating func u8() throws(Malformed) -> UInt8 { try load(UInt8.self) }
    package mutating func u16() throws(Malformed) -> UInt16 { try load(UInt16.self) }
    package mutating func u32() throws(Malformed) -> UInt32 { try load(UInt32.self) }
    package mutating func u64() throws(Malformed) -> UInt64 { try load(UInt64.self) }
    package mutating func i64() throws(Malformed) -> Int64 { Int64(bitPattern: try load(UInt64.self)) }
    package mutating func bool() throws(Malformed) -> Bool { try u8() != 0 }

    package mutating func blob() throws(Malformed) -> [UInt8] {
        let n = Int(try u32())
        let at = try take(n)
        return Array(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]))
    }

    package mutating func string() throws(Malformed) -> String {
        let raw = try blob()
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw Malformed(description: "a string that is not UTF-8 at offset \(offset)")
        }
        return s
    }

    package mutating func headers() throws(Malformed) -> [String: String] {
        let n = Int(try u16())
        var h: [String: String] = [:]
        h.reserveCapacity(n)
        for _ in 0..<n {
            let key = try string()
            h[key] = try string()
        }
        return h
    }

    package mutating func expectEnd() throws(Malformed) {
        guard isAtEnd else { throw Malformed(description: "\(remaining) unexpected bytes at the end") }
    }
}

/// Runs a closure through an API that rethrows untyped errors (`withUnsafeBytes` and friends) while keeping
/// the one error type the closure can throw.
@inline(__always)
package func keepingType<E: Error, R>(_ type: E.Type, _ body: () throws -> R) throws(E) -> R {
    do {
        return try body()
    } catch let error as E {
        throw error
    } catch {
        preconditionFailure("unexpected error \(error)")
    }
}
