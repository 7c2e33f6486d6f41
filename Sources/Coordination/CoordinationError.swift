/// The one error of the `Coordination` module: a closed code to switch on, a message for people, and the
/// underlying error when there is one.
public struct CoordinationError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, closed so that a caller's switch is exhaustive.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The store could not be reached, or stopped answering (a watch that ends with this code may have
        /// missed changes: read again, then watch again). For a write, the outcome is unknown: read to learn it.
        case unavailable
        /// The store did not answer within the request timeout. For a write, the outcome is unknown.
        case timedOut
        /// The lease does not exist (never granted, expired or revoked), where the operation needs it.
        case leaseNotFound
        /// The revision asked for was compacted away: read again, then watch from the new revision.
        case revisionCompacted
        /// The store answered something this client cannot read (not JSON, missing fields, a bad value).
        case malformedResponse
        /// The store refused the request (an error body not covered above); the message is the store's.
        case rejected
        /// The caller passed something invalid (a state that breaks `GroupState`'s invariants, a bad endpoint).
        case invalidArgument
        /// The coordinator was shut down.
        case shutDown
    }

    /// What went wrong.
    public var code: Code
    /// A sentence for logs and people.
    public var message: String
    /// The error underneath (a transport error, a decoding error), if any.
    public var cause: (any Error & Sendable)?

    /// An error with a code, a message and optionally the error underneath.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause)`.
    public var description: String {
        if let cause { return "\(code.rawValue): \(message) (\(cause))" }
        return "\(code.rawValue): \(message)"
    }
}
