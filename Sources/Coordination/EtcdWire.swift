import Foundation

// etcd's v3 JSON gateway messages (grpc-gateway over etcd's protobufs), only the fields this client uses. Every
// request is built from these structs, never by hand: the gateway ignores unknown fields silently, so a typo
// would send a request that means something else. Rules of the gateway (DESIGN.md, "Coordination on etcd"):
// keys and values are base64; 64-bit integers are decimal strings; a zero, false or empty field is left out of a
// response, so every response field is optional and absent means zero.

/// An int64 as the gateway writes it: a decimal string (it also accepts a bare number, which we read too).
struct EtcdInt64: Codable, Hashable, Sendable {
    var value: Int64
    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), let value = Int64(text) {
            self.value = value
        } else {
            self.value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

struct EtcdHeader: Decodable {
    var revision: EtcdInt64?
}

struct EtcdKeyValue: Decodable {
    var key: Data?
    var value: Data?
    var create_revision: EtcdInt64?
    var mod_revision: EtcdInt64?
    var lease: EtcdInt64?
}

struct EtcdRangeRequest: Encodable {
    var key: Data
    var range_end: Data? = nil
    /// 0 or absent: the current revision.
    var revision: EtcdInt64? = nil
}

struct EtcdPutRequest: Encodable {
    var key: Data
    var value: Data
    var lease: EtcdInt64? = nil
}

struct EtcdDeleteRangeRequest: Encodable {
    var key: Data
}

struct EtcdRequestOp: Encodable {
    var request_range: EtcdRangeRequest? = nil
    var request_put: EtcdPutRequest? = nil
    var request_delete_range: EtcdDeleteRangeRequest? = nil
}

struct EtcdCompare: Encodable {
    enum Target: String, Encodable { case CREATE, MOD, LEASE }
    var key: Data
    var result = "EQUAL"
    var target: Target
    var create_revision: EtcdInt64? = nil
    var mod_revision: EtcdInt64? = nil
    var lease: EtcdInt64? = nil

    static func noKey(_ key: Data) -> EtcdCompare {
        EtcdCompare(key: key, target: .CREATE, create_revision: EtcdInt64(0))
    }
    /// A missing key's mod_revision compares as 0, so 0 means "the key does not exist".
    static func modified(_ key: Data, at revision: Int64) -> EtcdCompare {
        EtcdCompare(key: key, target: .MOD, mod_revision: EtcdInt64(revision))
    }
    /// A missing key's lease compares as 0, and a granted lease id is never 0.
    static func bound(_ key: Data, to lease: Int64) -> EtcdCompare {
        EtcdCompare(key: key, target: .LEASE, lease: EtcdInt64(lease))
    }
}

struct EtcdTxnRequest: Encodable {
    var compare: [EtcdCompare]
    var success: [EtcdRequestOp]
    var failure: [EtcdRequestOp]
}

struct EtcdRangeResponse: Decodable {
    var kvs: [EtcdKeyValue]?
}

struct EtcdResponseOp: Decodable {
    var response_range: EtcdRangeResponse?
}

struct EtcdTxnResponse: Decodable {
    var header: EtcdHeader?
    /// Absent means false.
    var succeeded: Bool?
    var responses: [EtcdResponseOp]?
}

struct EtcdLeaseGrantRequest: Encodable {
    var TTL: EtcdInt64
}

struct EtcdLeaseGrantResponse: Decodable {
    var ID: EtcdInt64?
    var TTL: EtcdInt64?
    var error: String?
}

struct EtcdLeaseIDRequest: Encodable {
    var ID: EtcdInt64
}

struct EtcdKeepAliveLine: Decodable {
    struct Result: Decodable {
        /// Absent (zero) when the lease is gone: etcd answers a keepalive on a dead lease with no error.
        var TTL: EtcdInt64?
    }
    var result: Result?
}

/// A unary error body: `{"error":"...","message":"...","code":5}` (code: the gRPC status code).
struct EtcdErrorBody: Decodable {
    var message: String?
    var error: String?
    var code: Int?
}

struct EtcdWatchCreateRequest: Encodable {
    struct Create: Encodable {
        var key: Data
        var range_end: Data
        var start_revision: EtcdInt64
    }
    var create_request: Create
}

/// One line of a watch stream: `{"result":{...}}`, or the nested error that ends a stream when the server goes
/// away (`{"error":{"grpc_code":14,...}}`).
struct EtcdWatchLine: Decodable {
    struct Result: Decodable {
        var header: EtcdHeader?
        var created: Bool?
        var canceled: Bool?
        var compact_revision: EtcdInt64?
        var cancel_reason: String?
        var events: [EtcdEvent]?
    }
    struct StreamError: Decodable {
        var grpc_code: Int?
        var message: String?
    }
    var result: Result?
    var error: StreamError?
}

struct EtcdEvent: Decodable {
    /// Absent for a put (PUT is 0); "DELETE" for a delete.
    var type: String?
    var kv: EtcdKeyValue?
}

/// The coders: base64 `Data` is Foundation's default for `Data` in both directions, which is what the gateway
/// uses for keys and values.
enum EtcdJSON {
    static func encode(_ value: some Encodable) throws(CoordinationError) -> Data {
        do { return try JSONEncoder().encode(value) } catch {
            throw CoordinationError(.invalidArgument, "cannot encode a request", cause: error)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws(CoordinationError) -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch {
            let text = String(decoding: data.prefix(300), as: UTF8.self)
            throw CoordinationError(.malformedResponse, "cannot read etcd's \(what): \(text)", cause: error)
        }
    }
}
