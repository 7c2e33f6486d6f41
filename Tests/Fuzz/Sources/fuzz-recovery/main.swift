// Fuzzes segment scanning and recovery: the input becomes the frames area of a segment (behind a valid
// segment header) on a simulated disk; the scan must classify it (clean, torn tail, corruption) or throw a
// WALError, every record it serves must decode, and cutting a torn tail must leave a clean log.
import Glibc
import LogFormat
import WALSimulation
import DurableLog

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

let segmentBytes = 64 << 10
let identity = LogIdentity(high: 1, low: 2)

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    // The file is as long as the input (a short segment file is itself a case recovery must handle).
    let n = min(size, segmentBytes - SegmentHeader.blockBytes)
    var image = [UInt8](repeating: 0, count: SegmentHeader.blockBytes + n)
    let header = SegmentHeader(segmentID: SegmentID(1), firstLSN: .first, logIdentity: identity,
                               segmentBytes: UInt64(segmentBytes)).encoded()
    image.replaceSubrange(0..<header.count, with: header)
    for i in 0..<n { image[SegmentHeader.blockBytes + i] = data[i] }
    let disk = SimulatedDisk()
    do {
        let fd = try disk.open("/f/log/00000000000000000001.wal", writable: true, create: true)
        try image.withUnsafeBytes { try disk.write(fd, $0, at: 0, path: "segment") }
        try disk.dataSync(fd, path: "segment")
        disk.close(fd)
        // The recovery scan and its verdict, then every record served, read-only; and for some inputs the
        // cut itself (zeroing, deleting) followed by a second scan, which must then find a clean log.
        let inspection = try LogInspector.inspect(directory: "/f/log", verifyPayloads: true, fileSystem: disk)
        try LogInspector.forEachRecord(directory: "/f/log", fileSystem: disk) { _, _, _, _, _ in true }
        if size % 8 == 0, case .tornTail = inspection.verdict {
            _ = try LogInspector.recover(directory: "/f/log", fileSystem: disk)
            let again = try LogInspector.inspect(directory: "/f/log", fileSystem: disk)
            precondition(again.verdict == .clean, "recovery must leave a clean log: \(again.verdict)")
        }
    } catch is WALError {
        return 0
    } catch {
        preconditionFailure("unexpected error type \(error)")
    }
    return 0
}

nonisolated(unsafe) var argc = CommandLine.argc
nonisolated(unsafe) var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) })
