import DurableQueue
import Workload

/// The messages a scenario sends: WORKLOAD.md's 1 KiB messages, or for the size sweep messages of another
/// size cut from them (128 B: the first 128 bytes of each; 16 KiB: 16 consecutive messages back to back), so
/// that every size carries the same kind of content.
struct MessageSet: Sendable {
    let kind: PayloadKind
    let size: Int
    let bytes: [UInt8]

    init(_ kind: PayloadKind, size: Int = 1024, totalBytes: Int = 32 << 20) {
        self.kind = kind
        self.size = size
        let count = max(64, totalBytes / size)
        if size >= 1024 {
            precondition(size % 1024 == 0, "sizes above 1 KiB are whole numbers of messages")
            bytes = Payloads.messages(kind, count: count * size / 1024)
        } else {
            let whole = Payloads.messages(kind, count: count)
            var cut: [UInt8] = []
            cut.reserveCapacity(count * size)
            for i in 0..<count { cut += whole[(i * 1024)..<(i * 1024 + size)] }
            bytes = cut
        }
    }

    var count: Int { bytes.count / size }

    /// Where message `i` (wrapping around) is in `bytes`.
    func range(_ i: Int) -> Range<Int> {
        let m = i % count
        return (m * size)..<(m * size + size)
    }

    /// The messages as queue-layer bodies (at most `limit`, cycled by the runs).
    func bodies(limit: Int = 4096) -> [Message] {
        (0..<min(count, limit)).map { Message(body: Array(bytes[range($0)])) }
    }

    /// A scenario-name suffix for anything but WORKLOAD.md's default (1 KiB events).
    var label: String {
        (kind == .events ? "" : " \(kind.rawValue)") + (size == 1024 ? "" : " \(size < 1024 ? "\(size)B" : "\(size >> 10)KiB")")
    }
}
