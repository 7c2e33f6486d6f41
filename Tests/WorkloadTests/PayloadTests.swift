import Foundation
import Testing
import Workload

/// sha256 of `bytes` by the system's sha256sum (the workload's conformance hashes are sha256).
func sha256(_ bytes: [UInt8]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(bytes))
    try input.fileHandleForWriting.close()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return String(text.prefix(64))
}

@Suite(.timeLimit(.minutes(10))) struct PayloadTests {
    @Test func eventsMatchTheWorkloadsConformanceHash() throws {
        let bytes = Payloads.messages(.events, count: 1000)
        #expect(bytes.count == 1000 * 1024)
        #expect(try sha256(bytes) == "effafb2a2ee2310d8e4440a3e60800ebf64ee13c6afc5ef621e4103f7a1c4f64")
        #expect(String(decoding: bytes.prefix(200), as: UTF8.self)
                .hasPrefix("{\"id\":0,\"user_id\":\"u7935579\",\"event\":\"conversion\",\"ts\":1700000000009,\"ad_id\":\"ad-342426\""))
    }

    @Test func randomMatchesTheWorkloadsConformanceHash() throws {
        #expect(try sha256(Payloads.messages(.random, count: 1000))
                == "c38018f8a49615a4c30c224f7c8c5d90f18a25acf22c81fc8e6e0f7d26c917c8")
    }
}
