import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import Synchronization

/// POSTs JSON to etcd's gateway on one of several endpoints and maps every failure to a `CoordinationError`:
/// no response (refused, reset, timed out) to `.unavailable` or `.timedOut`, an error body to its code. Owns the
/// `HTTPClient`, whose event loops do the I/O: nothing here blocks a thread of the cooperative pool.
final class EtcdTransport: Sendable {
    let client: HTTPClient
    let endpoints: [String]
    let requestTimeout: Duration
    /// The endpoint that answered last; a transport failure moves to the next one for the calls after it.
    private let preferred = Mutex(0)
    /// Bodies of unary responses are small (two keys at most); a larger one is a wrong server.
    private let responseBytesMax = 4 << 20

    init(endpoints: [String], requestTimeout: Duration) throws(CoordinationError) {
        guard !endpoints.isEmpty else { throw CoordinationError(.invalidArgument, "no etcd endpoint given") }
        for endpoint in endpoints where URL(string: endpoint)?.host == nil || endpoint.hasSuffix("/") {
            throw CoordinationError(.invalidArgument, "not an endpoint URL like http://127.0.0.1:2379: \(endpoint)")
        }
        guard requestTimeout > .zero else { throw CoordinationError(.invalidArgument, "the request timeout must be positive") }
        self.endpoints = endpoints
        self.requestTimeout = requestTimeout
        // No read timeout on the client: it would also cut an idle watch. Unary calls are bounded by
        // `requestTimeout` around the whole exchange instead (see `exchange`).
        var configuration = HTTPClient.Configuration(timeout: .init(connect: Self.timeAmount(requestTimeout)))
        // A refused connection fails the call at once (AHC would otherwise retry it until the deadline and
        // report a timeout): the caller learns "unavailable" now, and a read tries the next endpoint.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// POSTs `body` to `path` and returns the body of a 200 response. `idempotent` calls (reads, keepalives) try
    /// every endpoint once; a write is sent once, because a write whose answer was lost may have been applied,
    /// and only the caller, by reading, can tell.
    func post(_ path: String, _ body: Data, idempotent: Bool) async throws(CoordinationError) -> Data {
        let attempts = idempotent ? endpoints.count : 1
        var lastError = CoordinationError(.unavailable, "no etcd endpoint answered")
        for _ in 0..<attempts {
            let index = preferred.withLock { $0 }
            do throws(CoordinationError) {
                return try await exchange(endpoints[index] + path, body)
            } catch {
                guard error.code == .unavailable || error.code == .timedOut else { throw error }
                moveOn(from: index)
                lastError = error
            }
        }
        throw lastError
    }

    /// Starts a streaming POST (the watch) and returns the response once its head says 200; the body is then
    /// read by the caller for as long as it lasts. Only the head is bounded by the request timeout.
    func openStream(_ path: String, _ body: Data) async throws(CoordinationError) -> HTTPClientResponse {
        let index = preferred.withLock { $0 }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request(endpoints[index] + path, body),
                                                deadline: .now() + Self.timeAmount(requestTimeout))
        } catch {
            moveOn(from: index)
            throw Self.transportError(error, endpoint: endpoints[index])
        }
        guard response.status == .ok else {
            let bytes = (try? await response.body.collect(upTo: responseBytesMax)) ?? ByteBuffer()
            throw Self.errorFromBody(status: response.status.code, Data(buffer: bytes))
        }
        return response
    }

    func shutdown() async throws(CoordinationError) {
        do { try await client.shutdown() } catch {
            throw CoordinationError(.shutDown, "the HTTP client was already shut down", cause: error)
        }
    }

    // MARK: - One exchange

    private func exchange(_ url: String, _ body: Data) async throws(CoordinationError) -> Data {
        let timeout = requestTimeout
        let (status, bytes): (UInt, Data)
        do {
            // The deadline of `execute` stops at the response head; the race bounds the body's reading too.
            (status, bytes) = try await withThrowingTaskGroup(of: (UInt, Data).self) { group in
                group.addTask {
                    let response = try await self.client.execute(self.request(url, body),
                                                                 deadline: .now() + Self.timeAmount(timeout))
                    let buffer = try await response.body.collect(upTo: self.responseBytesMax)
                    return (response.status.code, Data(buffer: buffer))
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw CoordinationError(.timedOut, "etcd did not answer \(url) within \(timeout)")
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else {
                    throw CoordinationError(.unavailable, "no answer from \(url)")
                }
                return first
            }
        } catch {
            throw Self.transportError(error, endpoint: url)
        }
        guard status == 200 else { throw Self.errorFromBody(status: status, bytes) }
        return bytes
    }

    private func request(_ url: String, _ body: Data) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: body))
        return request
    }

    private func moveOn(from index: Int) {
        preferred.withLock { if $0 == index { $0 = (index + 1) % endpoints.count } }
    }

    // MARK: - Error mapping

    static func transportError(_ error: any Error, endpoint: String) -> CoordinationError {
        if let error = error as? CoordinationError { return error }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .connectTimeout {
            return CoordinationError(.timedOut, "etcd at \(endpoint) did not answer in time", cause: error)
        }
        if let error = error as? HTTPClientError, error == .alreadyShutdown {
            return CoordinationError(.shutDown, "the coordinator was shut down", cause: error)
        }
        if error is CancellationError {
            return CoordinationError(.unavailable, "the call to \(endpoint) was cancelled", cause: error)
        }
        return CoordinationError(.unavailable, "etcd at \(endpoint) cannot be reached", cause: error)
    }

    /// Maps an error body `{"error":S,"message":S,"code":grpcCode}` (DESIGN.md lists the ones seen) to a code.
    static func errorFromBody(status: UInt, _ body: Data) -> CoordinationError {
        guard let parsed = try? JSONDecoder().decode(EtcdErrorBody.self, from: body), let code = parsed.code else {
            // Not etcd's JSON (a proxy, a wrong port, a wrong path answers plain text).
            let text = String(decoding: body.prefix(300), as: UTF8.self)
            return CoordinationError(.rejected, "HTTP \(status) without an etcd error body: \(text)")
        }
        let message = parsed.message ?? parsed.error ?? "(no message)"
        switch code {
        case 5 where message.contains("lease"): return CoordinationError(.leaseNotFound, message)
        case 11 where message.contains("compacted"): return CoordinationError(.revisionCompacted, message)
        case 14: return CoordinationError(.unavailable, message)
        case 4: return CoordinationError(.timedOut, message)
        default: return CoordinationError(.rejected, "HTTP \(status), gRPC code \(code): \(message)")
        }
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
