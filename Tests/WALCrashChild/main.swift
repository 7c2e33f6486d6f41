// The crash tests' child: appends from many tasks at once and writes one line per confirmed append to
// stdout ("<lsn> <fnv1a-64 of the payload in hex>"), each line with one write(2), until it is killed.
// Usage: WALCrashChild <log directory> <concurrent appenders> <seed>
import Glibc
import Logging
import DurableLog

func printError(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let streams = Int(arguments[2]), let seed = UInt64(arguments[3]) else {
    printError("usage: WALCrashChild DIR STREAMS SEED")
    exit(2)
}

var options = LogOptions()
options.logger = Logger(label: "crash-child") { _ in SwiftLogNoOpLogHandler() }
options.segmentBytes = 256 << 10
options.frameBytesMax = 32 << 10
options.recordBytesMax = (32 << 10) - 4
options.pendingBytesMax = 128 << 10
let log: WriteAheadLog
do {
    log = try WriteAheadLog.open(directory: arguments[1], options: options)
} catch {
    printError("open failed: \(error)")
    exit(1)
}

func payload(stream: Int, index: Int) -> [UInt8] {
    var state = seed &+ UInt64(stream) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9
    let length = Int(state % 3000) + 1
    var bytes = [UInt8](repeating: 0, count: length)
    for i in 0..<length {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        bytes[i] = i % 4 == 0 ? UInt8(truncatingIfNeeded: state >> 56) : UInt8(ascii: "a") + UInt8(i % 7)
    }
    return bytes
}

func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

for stream in 0..<streams {
    Task.detached {
        var index = 0
        while true {
            let record = payload(stream: stream, index: index)
            guard let lsn = try? await log.append(record) else { exit(3) }
            let line = "\(lsn.rawValue) \(String(fnv1a(record), radix: 16))\n"
            _ = line.withCString { write(1, $0, strlen($0)) }  // one write: lines never interleave
            index += 1
        }
    }
}
while true { sleep(60) }
