import Foundation
import Testing

/// The benchmark binary runs end to end on a few scenarios and writes JSON that parses and an SVG: the
/// suite is not run by CI otherwise, so this keeps it from rotting. It measures nothing (tests do not time).
@Suite(.timeLimit(.minutes(10))) struct BenchSmokeTests {
    @Test func walBenchRunsAndWritesJSONAndSVG() throws {
        let dir = NSTemporaryDirectory() + "bench-smoke-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bench = Process()
        bench.executableURL = URL(fileURLWithPath: productsDirectory() + "/wal-bench")
        bench.arguments = ["--reps", "1", "--seconds", "0.2", "--messages", "300", "--concurrency", "1,16",
                           "--sizes", "1024", "--only", "c=16", "--dir", dir,
                           "--json", dir + "/out.json", "--svg", dir + "/out.svg"]
        bench.standardOutput = FileHandle.nullDevice
        try bench.run()
        bench.waitUntilExit()
        #expect(bench.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out.json")))
            as? [String: Any])
        let scenarios = try #require(json["scenarios"] as? [[String: Any]])
        let names = Set(scenarios.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["wal c=16", "queue c=16", "sqlite c=16", "queue windowed c=16"]), "\(names)")
        for s in scenarios {
            let median = try #require((s["summary"] as? [String: Any])?["median"] as? [String: Any])
            #expect((median["messages"] as? Int ?? 0) > 0, "\(s["name"] ?? "?") confirmed nothing")
        }
        let queue = try #require(scenarios.first { $0["name"] as? String == "queue c=16" })
        #expect(queue["ratioToCeiling"] is Double && queue["ratioToSQLite"] is Double)
        #expect((json["machine"] as? [String: String])?["cores"] != nil)
        let svg = try String(contentsOfFile: dir + "/out.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
    }
}

func productsDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return URL(fileURLWithPath: path).deletingLastPathComponent().path
}
