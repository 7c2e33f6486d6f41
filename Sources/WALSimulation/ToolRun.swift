import Foundation

/// What a command-line tool run by a test printed and how it exited.
public struct ToolRun: Sendable {
    public var status: Int32
    public var output: String
    public var errors: String

    /// Runs the executable at `path` with `arguments` and waits for it. Standard error is read on a thread of
    /// its own, so that a tool that writes much to both streams cannot block on a full pipe.
    public static func run(_ path: String, _ arguments: [String]) throws -> ToolRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errors = ErrorsBox()
        let reader = Thread { errors.data = err.fileHandleForReading.readDataToEndOfFile(); errors.done.signal() }
        reader.start()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        errors.done.wait()
        process.waitUntilExit()
        return ToolRun(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
                       errors: String(decoding: errors.data, as: UTF8.self))
    }

    /// The directory of the running executable: where SwiftPM puts the package's tools beside the test bundle.
    public static var productsDirectory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = String(decoding: buffer.prefix(max(n, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    private final class ErrorsBox: @unchecked Sendable {
        var data = Data()
        let done = DispatchSemaphore(value: 0)
    }
}
