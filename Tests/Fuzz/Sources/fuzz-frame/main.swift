// Fuzzes the frame decoder and the batch decoder (CRC check, LZ4, record framing) with arbitrary bytes.
// The input's first byte picks whether to take the bytes as they are or to give them a valid checksum
// first, so that the fuzzer also reaches the LZ4 and record-framing code behind the CRC.
import Glibc
import LogFormat

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var scratch: [UInt8] = []  // libFuzzer calls back on one thread

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 1 else { return 0 }
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 1 == 1 && bytes.count >= FrameHeader.encodedBytes {
        // Make the checksum right so the payload decoders run; also force the magic and version.
        bytes.withUnsafeMutableBytes { b in
            b.storeBytes(of: FrameHeader.magic.littleEndian, toByteOffset: 4, as: UInt32.self)
            b[8] = FrameHeader.formatVersion
            let stored = min(Int(b.loadUnaligned(fromByteOffset: 12, as: UInt32.self)), b.count - FrameHeader.encodedBytes)
            b.storeBytes(of: UInt32(stored).littleEndian, toByteOffset: 12, as: UInt32.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[4..<(FrameHeader.encodedBytes + stored)]))
            b.storeBytes(of: crc.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
    }
    let check = bytes.withUnsafeBytes { FrameHeader.check($0, storedBytesMax: max(0, $0.count - FrameHeader.encodedBytes)) }
    guard case .intact(let header) = check else { return 0 }
    precondition(header.frameBytes <= bytes.count + 7, "an intact frame cannot be longer than its bytes")
    let decoded = bytes.withUnsafeBytes { frame in
        Result { () throws(BatchDefect) in
            try BatchPayload.decode(frame: frame, header: header, uncompressedBytesMax: 1 << 20, into: &scratch)
        }
    }
    if case .success(let n) = decoded {
        var count = 0
        scratch.withUnsafeBytes { p in
            BatchPayload.forEachRecord(UnsafeRawBufferPointer(rebasing: p[0..<n])) { _ in count += 1 }
        }
        precondition(count == Int(header.recordCount), "a decoded batch must hold exactly its record count")
    }
    return 0
}

nonisolated(unsafe) var argc = CommandLine.argc
nonisolated(unsafe) var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) })
