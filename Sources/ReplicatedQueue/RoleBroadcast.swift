import Synchronization

/// Hands every change of role to each listener, each starting with the role at the time it began listening.
final class RoleBroadcast: Sendable {
    private struct State {
        var current = StoreRole.starting
        var listeners: [Int: AsyncStream<StoreRole>.Continuation] = [:]
        var nextID = 0
        var finished = false
    }

    private let state = Mutex(State())

    func publish(_ role: StoreRole) {
        let listeners = state.withLock { s in
            s.current = role
            return Array(s.listeners.values)
        }
        for listener in listeners { listener.yield(role) }
    }

    func updates() -> AsyncStream<StoreRole> {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreRole.self, bufferingPolicy: .unbounded)
        let added = state.withLock { s -> Int? in
            guard !s.finished else { return nil }
            let id = s.nextID
            s.nextID += 1
            s.listeners[id] = continuation
            continuation.yield(s.current)
            return id
        }
        guard let id = added else {
            continuation.yield(state.withLock { $0.current })
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.listeners.removeValue(forKey: id) }
        }
        return stream
    }

    func finish() {
        let listeners = state.withLock { s in
            s.finished = true
            defer { s.listeners.removeAll() }
            return Array(s.listeners.values)
        }
        for listener in listeners { listener.finish() }
    }
}
