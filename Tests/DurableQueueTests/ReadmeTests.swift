import Foundation
import Testing

/// Every Swift example in README.md (but the Package.swift excerpt) is compiled: it must appear verbatim in
/// `ReadmeExamples.swift`, which the test build compiles.
@Suite(.timeLimit(.minutes(1))) struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func everyReadmeExampleIsCompiled() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let examples = try String(contentsOf: Self.root.appendingPathComponent("Tests/DurableQueueTests/ReadmeExamples.swift"),
                                  encoding: .utf8)
        var blocks: [String] = []
        var current: [String]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "```swift" { current = []; continue }
            if line == "```", let block = current { blocks.append(block.joined(separator: "\n")); current = nil; continue }
            current?.append(String(line))
        }
        let examplesOfCode = blocks.filter { !$0.hasPrefix("// Package.swift") }
        #expect(examplesOfCode.count >= 3)
        for block in examplesOfCode {
            let body = block.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("import ") }
                .drop { $0.isEmpty }
                .map { $0.isEmpty ? "" : "    " + $0 }
                .joined(separator: "\n")
            #expect(examples.contains(body), "a README example is not in ReadmeExamples.swift as written:\n\(block.prefix(200))")
        }
    }
}
