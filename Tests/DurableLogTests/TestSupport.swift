import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// A fresh directory under the system temporary directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "wal-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ name: String) -> String { path + "/" + name }
}

/// Small segments and frames so that tests roll segments and split groups quickly.
func smallOptions(segmentBytes: Int = 256 << 10) -> LogOptions {
    var o = LogOptions()
    o.logger = quietLogger
    o.segmentBytes = segmentBytes
    o.frameBytesMax = 16 << 10
    o.recordBytesMax = (16 << 10) - 4
    o.pendingBytesMax = 64 << 10
    return o
}

/// A deterministic, partly compressible record for (stream, index).
func testRecord(_ stream: Int, _ index: Int, size: Int? = nil) -> [UInt8] {
    var state = UInt64(stream &* 1_000_003 &+ index) &+ 0x9E37_79B9_7F4A_7C15
    let length = size ?? (Int(state % 700) + 1)
    var bytes = Array("s\(stream)-i\(index):".utf8)
    while bytes.count < length {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        bytes.append(contentsOf: testWords[Int(state >> 61)].utf8)
    }
    return Array(bytes.prefix(length))
}

private let testWords = ["queue ", "message ", "durable ", "confirm ", "segment ", "frame ", "ack ", "offset "]

/// The segment files of a log, oldest first.
func segmentPaths(_ directory: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.filter { $0.hasSuffix(".wal") }.sorted().map { directory + "/" + $0 }
}

/// Where the frames of a segment file lie (walking intact frames from the first).
func frameOffsets(_ path: String) -> [(offset: Int, header: FrameHeader)] {
    let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
    var result: [(Int, FrameHeader)] = []
    var offset = SegmentHeader.blockBytes
    while offset + FrameHeader.encodedBytes <= bytes.count {
        let check = bytes.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[offset...]), storedBytesMax: bytes.count - offset - 56)
        }
        guard case .intact(let h) = check else { break }
        result.append((offset, h))
        offset += h.frameBytes
    }
    return result
}

func patchFile(_ path: String, at offset: Int, _ bytes: [UInt8]) {
    let handle = FileHandle(forUpdatingAtPath: path)!
    try! handle.seek(toOffset: UInt64(offset))
    handle.write(Data(bytes))
    try! handle.close()
}

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path)!) }

/// Appends `count` records, each in its own group (one frame each), and closes the log.
@discardableResult
func writeLog(_ directory: String, count: Int, options: LogOptions = smallOptions()) throws -> [[UInt8]] {
    let log = try WriteAheadLog.open(directory: directory, options: options)
    var records: [[UInt8]] = []
    for i in 0..<count {
        let r = testRecord(0, i)
        let lsn = try r.withUnsafeBytes { try log.appendAndWait($0) }
        precondition(lsn == LSN(UInt64(i + 1)))
        records.append(r)
    }
    try log.close()
    return records
}

func readAll(_ log: WriteAheadLog) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    try log.forEachRecord(from: log.firstLSN) { _, bytes in
        out.append(Array(bytes))
        return true
    }
    return out
}

/// FNV-1a, 64 bits: the crash tests' digest of a payload, independent of the log's own CRC.
func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

/// Every intact frame anywhere in a segment file (at each 8-byte boundary), including a recycled file's
/// older frames behind its live ones.
func intactFramesAnywhere(_ path: String) -> [(offset: Int, header: FrameHeader)] {
    let bytes = readFile(path)
    var result: [(Int, FrameHeader)] = []
    var offset = SegmentHeader.blockBytes
    while offset + FrameHeader.encodedBytes <= bytes.count {
        let check = bytes.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[offset...]),
                              storedBytesMax: bytes.count - offset - FrameHeader.encodedBytes)
        }
        if case .intact(let h) = check {
            result.append((offset, h))
            offset += h.frameBytes
        } else {
            offset += 8
        }
    }
    return result
}

/// The `WALError` that `body` throws, after checking its code: the test fails when `body` throws nothing,
/// throws another type, or another code.
@discardableResult
func expectWALError<T>(_ code: WALError.Code, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> T) -> WALError? {
    let error = #expect(throws: WALError.self, comment, sourceLocation: sourceLocation) { _ = try body() }
    #expect(error?.code == code, comment, sourceLocation: sourceLocation)
    return error
}

@discardableResult
func expectWALError<T>(_ code: WALError.Code, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> T) async -> WALError? {
    let error = await #expect(throws: WALError.self, comment, sourceLocation: sourceLocation) { _ = try await body() }
    #expect(error?.code == code, comment, sourceLocation: sourceLocation)
    return error
}
