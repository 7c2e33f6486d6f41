import Foundation

/// The suite's charts as one SVG a person can open: throughput against concurrency (the log, the queue
/// layer, the ceiling at the log's own group sizes, SQLite), and latency percentiles at concurrency 1 and 64.
/// Both axes are logarithmic.
@MainActor struct Chart {
    let suite: Suite
    let report: [Suite.Row]
    let concurrencies: [Int]

    private struct Series {
        var name: String
        var color: String
        var dashed = false
        var points: [(x: Double, y: Double)]
    }

    private static let width = 760.0, panelHeight = 360.0, left = 80.0, right = 200.0, top = 40.0, bottom = 50.0

    func svg() -> String {
        let rows = Dictionary(uniqueKeysWithValues: report.map { ($0.name, $0) })
        func throughput(_ prefix: String) -> [(Double, Double)] {
            concurrencies.compactMap { c in rows["\(prefix)c=\(c)"].map { (Double(c), $0.summary.median.messagesPerSecond) } }
        }
        let ceilingAtGroup = concurrencies.compactMap { c in
            rows["wal c=\(c)"]?.ceilingAtGroupPerSecond.map { (Double(c), $0) }
        }
        let throughputSeries = [
            Series(name: "wal (awaited)", color: "#1f77b4", points: throughput("wal ")),
            Series(name: "wal (windowed)", color: "#1f77b4", dashed: true, points: throughput("wal windowed ")),
            Series(name: "queue (awaited)", color: "#2ca02c", points: throughput("queue ")),
            Series(name: "queue (windowed)", color: "#2ca02c", dashed: true, points: throughput("queue windowed ")),
            Series(name: "ceiling at wal's group", color: "#7f7f7f", points: ceilingAtGroup),
            Series(name: "SQLite (batched)", color: "#d62728", points: throughput("sqlite ")),
        ].filter { !$0.points.isEmpty }

        let percentileX = Measurement.percentiles.map { -log10(1 - $0 / 100) }  // 50% -> 0.3, 99.99% -> 4
        func latency(_ key: String) -> [(Double, Double)] {
            guard let m = rows[key]?.summary.median else { return [] }
            return zip(percentileX, m.latencyPercentiles).filter { $0.1 > 0 }.map { ($0.0, $0.1) }
        }
        let latencySeries = [
            Series(name: "wal c=1", color: "#1f77b4", dashed: true, points: latency("wal c=1")),
            Series(name: "queue c=1", color: "#2ca02c", dashed: true, points: latency("queue c=1")),
            Series(name: "SQLite c=1", color: "#d62728", dashed: true, points: latency("sqlite c=1")),
            Series(name: "ceiling b=1", color: "#7f7f7f", dashed: true, points: latency("ceiling b=1")),
            Series(name: "wal c=64", color: "#1f77b4", points: latency("wal c=64")),
            Series(name: "queue c=64", color: "#2ca02c", points: latency("queue c=64")),
            Series(name: "SQLite c=64", color: "#d62728", points: latency("sqlite c=64")),
        ].filter { !$0.points.isEmpty }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(2 * Self.panelHeight + 20))" \
            font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>

            """
        out += panel(title: "Durable msgs/s against concurrency (1 KiB events, medians)", y0: 0, series: throughputSeries,
                     xLabel: "concurrency (publishes in flight)", yLabel: "msgs/s",
                     xTick: { "\(Int($0.rounded()))" }, xTicks: concurrencies.map(Double.init), yTick: Self.short)
        out += panel(title: "Confirm latency percentiles (us)", y0: Self.panelHeight + 20, series: latencySeries,
                     xLabel: "percentile", yLabel: "latency us",
                     xTick: { x in Measurement.percentiles[percentileX.firstIndex(of: x) ?? 0].formatted() + "%" },
                     xTicks: percentileX, yTick: Self.short)
        return out + "</svg>\n"
    }

    private func panel(title: String, y0: Double, series: [Series], xLabel: String, yLabel: String,
                       xTick: (Double) -> String, xTicks: [Double], yTick: (Double) -> String) -> String {
        let all = series.flatMap(\.points)
        guard !all.isEmpty else { return "" }
        let plotW = Self.width - Self.left - Self.right, plotH = Self.panelHeight - Self.top - Self.bottom
        let xs = all.map(\.x), ys = all.map(\.y).filter { $0 > 0 }
        let xLog = xTicks.allSatisfy { $0 >= 1 }  // concurrency: log scale; percentile positions are already logs
        func tx(_ v: Double) -> Double { xLog ? log10(v) : v }
        let (xMin, xMax) = (tx(xs.min()!), max(tx(xs.max()!), tx(xs.min()!) + 1e-9))
        let yMin = floor(log10(ys.min()!)), yMax = max(ceil(log10(ys.max()!)), yMin + 1)
        func px(_ v: Double) -> Double { Self.left + (tx(v) - xMin) / (xMax - xMin) * plotW }
        func py(_ v: Double) -> Double { y0 + Self.top + plotH - (log10(max(v, 1e-9)) - yMin) / (yMax - yMin) * plotH }
        var out = "<text x=\"\(Self.left)\" y=\"\(y0 + 22)\" font-size=\"14\" font-weight=\"bold\">\(title)</text>\n"
        out += "<rect x=\"\(Self.left)\" y=\"\(y0 + Self.top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        for e in Int(yMin)...Int(yMax) {
            let y = py(pow(10, Double(e)))
            out += "<line x1=\"\(Self.left)\" y1=\"\(y)\" x2=\"\(Self.left + plotW)\" y2=\"\(y)\" stroke=\"#eee\"/>\n"
            out += "<text x=\"\(Self.left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(yTick(pow(10, Double(e))))</text>\n"
        }
        for x in xTicks {
            out += "<text x=\"\(px(x))\" y=\"\(y0 + Self.top + plotH + 16)\" text-anchor=\"middle\">\(xTick(x))</text>\n"
        }
        out += "<text x=\"\(Self.left + plotW / 2)\" y=\"\(y0 + Self.panelHeight - 12)\" text-anchor=\"middle\">\(xLabel)</text>\n"
        out += "<text x=\"16\" y=\"\(y0 + Self.top + plotH / 2)\" transform=\"rotate(-90 16 \(y0 + Self.top + plotH / 2))\" text-anchor=\"middle\">\(yLabel)</text>\n"
        for (i, s) in series.enumerated() {
            let path = s.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
            let dash = s.dashed ? " stroke-dasharray=\"6 4\"" : ""
            out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(dash)/>\n"
            for p in s.points {
                out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", px(p.x), py(p.y), s.color)
            }
            let ly = y0 + Self.top + 10 + Double(i) * 18
            out += "<line x1=\"\(Self.width - Self.right + 12)\" y1=\"\(ly)\" x2=\"\(Self.width - Self.right + 40)\" y2=\"\(ly)\" stroke=\"\(s.color)\" stroke-width=\"2\"\(dash)/>\n"
            out += "<text x=\"\(Self.width - Self.right + 46)\" y=\"\(ly + 4)\">\(s.name)</text>\n"
        }
        return out
    }

    private static func short(_ v: Double) -> String {
        if v >= 1_000_000 { return "\(Int(v / 1_000_000))M" }
        if v >= 1000 { return "\(Int(v / 1000))k" }
        return "\(Int(v))"
    }
}
