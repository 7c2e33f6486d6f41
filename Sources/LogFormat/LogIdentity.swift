/// The identity of one log directory: 16 random bytes chosen when the log is created (a UUID), written
/// into every segment header so that a segment copied in from another log is refused.
public struct LogIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The UUID's first 8 bytes as one number (the first 16 hex digits of `description`); stored
    /// little-endian at byte 32 of every segment header.
    public var high: UInt64
    /// The UUID's last 8 bytes as one number (the last 16 hex digits of `description`); stored at byte 40.
    public var low: UInt64
    /// The identity of these halves, as read from a segment header; `random()` makes a new one.
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// A random version-4 UUID.
    public static func random() -> LogIdentity {
        var g = SystemRandomNumberGenerator()
        var high = g.next() as UInt64
        var low = g.next() as UInt64
        high = (high & ~0xF000) | 0x4000            // version 4
        low = (low & ~(0xC << 60)) | (0x8 << 60)     // RFC 4122 variant
        return LogIdentity(high: high, low: low)
    }

    public var description: String {
        let h = String(high, radix: 16), l = String(low, radix: 16)
        let hex = String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    /// The identity `description` wrote (a UUID in its 8-4-4-4-12 hex form); nil for any other text.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.map(\.count) == [8, 4, 4, 4, 12] else { return nil }
        let hex = parts.joined()
        guard let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(high: high, low: low)
    }
}
