/// The benchmark's messages, exactly as `../shared/bench/WORKLOAD.md` defines them: 1024 bytes each,
/// message i depending only on (kind, i), so every run and every peer sends the same bytes.
public enum PayloadKind: String, Sendable, CaseIterable {
    /// Semi-compressible JSON-like ad-click events (LZ4 about 2.7x at 64 per batch).
    case events
    /// Incompressible bytes.
    case random
}

public enum Payloads {
    public static let messageBytes = 1024
    static let seedEvents: UInt64 = 0x00C0_FFEE_0E7E_0001
    static let seedRandom: UInt64 = 0x00C0_FFEE_0A4D_0002
    static let eventTypes = ["impression", "click", "view", "conversion"]
    static let devices = ["mobile", "desktop", "tablet", "tv"]
    static let geos = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA"]
    static let vocabulary = [
        "sponsored", "banner", "video", "native", "retarget", "audience", "segment", "bid",
        "auction", "creative", "landing", "page", "mobile", "desktop", "session", "cookie",
        "campaign", "budget", "pacing", "frequency", "cap", "viewable", "render", "pixel",
        "conversion", "attribution", "window", "lookback", "placement", "inventory", "publisher", "advertiser",
    ].map { Array($0.utf8) }

    /// Messages `first ..< first + count` back to back.
    public static func messages(_ kind: PayloadKind, count: Int, first: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * messageBytes)
        for i in first..<(first + count) { out += message(kind, index: UInt64(i)) }
        return out
    }

    public static func message(_ kind: PayloadKind, index i: UInt64) -> [UInt8] {
        switch kind {
        case .random:
            var rng = SplitMix(seed: seedRandom, index: i)
            var out: [UInt8] = []
            out.reserveCapacity(messageBytes)
            for _ in 0..<(messageBytes / 8) { withUnsafeBytes(of: rng.next().littleEndian) { out += $0 } }
            return out
        case .events:
            return event(i)
        }
    }

    private static func event(_ i: UInt64) -> [UInt8] {
        var rng = SplitMix(seed: seedEvents, index: i)
        let user = rng.next() % 10_000_000
        let event = eventTypes[Int(rng.next() % 4)]
        let ts = 1_700_000_000_000 + i * 20 + rng.next() % 20
        let ad = rng.next() % 1_000_000
        let campaign = rng.next() % 10_000
        let cost = rng.next() % 5_000_000
        let geo = geos[Int(rng.next() % 8)]
        let device = devices[Int(rng.next() % 4)]
        let header = "{\"id\":\(i),\"user_id\":\"u\(pad(user, 7))\",\"event\":\"\(event)\",\"ts\":\(ts),"
            + "\"ad_id\":\"ad-\(pad(ad, 6))\",\"campaign\":\"cmp-\(pad(campaign, 4))\","
            + "\"cost\":\(cost / 1_000_000).\(pad(cost % 1_000_000, 6)),\"geo\":\"\(geo)\",\"device\":\"\(device)\",\"text\":\""
        var out = Array(header.utf8)
        out.reserveCapacity(messageBytes)
        var first = true
        while true {
            let word = vocabulary[Int(rng.next() % UInt64(vocabulary.count))]
            let need = word.count + (first ? 0 : 1)
            if out.count + need > messageBytes - 2 { break }
            if !first { out.append(UInt8(ascii: " ")) }
            out += word
            first = false
        }
        out += [UInt8](repeating: UInt8(ascii: " "), count: messageBytes - 2 - out.count)
        out += Array("\"}".utf8)
        precondition(out.count == messageBytes)
        return out
    }

    private static func pad(_ value: UInt64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

/// splitmix64, per message: `init(seed, i)` then `next()`, as WORKLOAD.md §1.1 defines.
struct SplitMix {
    static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
    var state: UInt64

    init(seed: UInt64, index: UInt64) { state = Self.mix(seed &+ Self.golden &* (index &+ 1)) }

    mutating func next() -> UInt64 {
        state = state &+ Self.golden
        return Self.mix(state)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
