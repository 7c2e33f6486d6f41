/// Streams: append-only logs of records addressed by offset (Kafka's model), kept until retention removes
/// them, with consumer groups that commit offsets explicitly and durably.
extension QueueStore {
    /// Declares a stream; declaring an existing one with the same options does nothing.
    public func declareStream(_ name: String, options: StreamOptions = StreamOptions()) async throws(QueueError) {
        guard !name.isEmpty, name.utf8.count <= 255 else {
            throw QueueError(.invalidArgument, "a stream name is 1 to 255 bytes")
        }
        try options.validate()
        let exists: Bool = try core.withLock { c throws(QueueError) in
            try c.usable()
            guard let id = c.state.streamIDs[name], let existing = c.state.streams[id] else { return false }
            guard existing.options == options else {
                throw QueueError(.mismatchedOptions, "stream '\(name)' exists with other options")
            }
            return true
        }
        if !exists { _ = try await perform([.declareStream(name: name, options: options)]) }
    }

    /// Deletes a stream with its records and its groups' committed offsets (idempotent producers' sequences
    /// for it go too); durable when it returns.
    /// - Throws: `.notFound` when no stream has that name, `.closed`, `.logFailed`.
    public func deleteStream(_ name: String) async throws(QueueError) {
        let id = try streamID(name)
        _ = try await perform([.deleteStream(stream: id)])
    }

    /// Appends a record and returns its offset once it is durable.
    /// - Throws: `.invalidArgument` when the message does not fit one log record (the same rule as a
    ///   publish), `.notFound`, `.logFailed`.
    @discardableResult
    public func append(to stream: String, _ message: Message) async throws(QueueError) -> StreamOffset {
        try checkFits(message)
        let id = try streamID(stream)
        let effect = try await perform([.streamAppend(stream: id, time: options.clock.wallMilliseconds,
                                                      headers: message.headers, body: message.body)])
        guard case .appended(let offset) = effect else {
            throw QueueError(.notFound, "stream '\(stream)' was deleted")
        }
        return StreamOffset(rawValue: offset)
    }

    /// Up to `limit` records from `offset` on. Records before the first retained offset are gone: reading
    /// from there starts at the first retained record (check the offsets you get).
    ///
    /// A synchronous call: records the store's cache does not hold are read from the log on the calling thread
    /// (`pread`, usually served by the page cache). Consumer deliveries, by contrast, read off the cooperative
    /// pool.
    public func read(stream: String, from offset: StreamOffset, limit: Int = 100) throws(QueueError) -> [StreamRecord] {
        let wanted: [(offset: UInt64, entry: StreamIndex.Entry)] = try core.withLock { c throws(QueueError) in
            try c.usable()
            guard let id = c.state.streamIDs[stream], let s = c.state.streams[id] else {
                throw QueueError(.notFound, "no stream named '\(stream)'")
            }
            let start = max(offset.rawValue, s.firstOffset)
            guard start < s.nextOffset else { return [] }
            let first = Int(start - s.firstOffset)
            let end = min(s.entries.count, first + limit)
            return (first..<end).map { (s.firstOffset + UInt64($0), s.entries[$0]) }
        }
        var records: [StreamRecord] = []
        records.reserveCapacity(wanted.count)
        for w in wanted {
            do {
                records.append(StreamRecord(offset: StreamOffset(rawValue: w.offset), timestamp: w.entry.time,
                                            message: try readMessage(at: w.entry.lsn)))
            } catch where error.code == .notFound {
                continue  // removed by retention since the lookup
            }
        }
        return records
    }

    /// Suspends until the stream has a record at `offset`.
    /// - Throws: `.notFound` (the stream was deleted), `.closed`, `.logFailed`, `.cancelled` (the waiting task
    ///   was cancelled).
    public func waitForRecords(stream: String, at offset: StreamOffset) async throws(QueueError) {
        let id = try streamID(stream)
        let offset = offset.rawValue
        while true {
            if Task.isCancelled { throw QueueError(.cancelled, "the task waiting for stream records was cancelled") }
            let done: Bool = try core.withLock { c throws(QueueError) in
                try c.usable()
                guard let s = c.state.streams[id] else { throw QueueError(.notFound, "stream '\(stream)' was deleted") }
                return s.nextOffset > offset
            }
            if done { return }
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
                    let resumeNow = core.withLock { c -> Bool in
                        guard !Task.isCancelled, c.failure == nil, !c.closed, let s = c.state.streams[id],
                              s.nextOffset <= offset else {
                            return true
                        }
                        c.streamWaiters[id, default: []].append(waiter)
                        return false
                    }
                    if resumeNow { waiter.resume() }
                }
            } onCancel: {
                // Every waiter on this stream looks again; the cancelled one throws, the others wait again.
                let waiters = core.withLock { $0.streamWaiters.removeValue(forKey: id) ?? [] }
                for w in waiters { w.resume() }
            }
        }
    }

    /// Commits a consumer group's offset (the next offset it will read); durable when this returns.
    public func commitOffset(stream: String, group: String, offset: StreamOffset) async throws(QueueError) {
        let id = try streamID(stream)
        _ = try await perform([.commitOffset(stream: id, group: group, offset: offset.rawValue)])
    }

    /// The group's committed offset, or nil when it never committed one.
    public func committedOffset(stream: String, group: String) throws(QueueError) -> StreamOffset? {
        let id = try streamID(stream)
        return core.withLock { $0.state.streams[id]?.groups[group].map(StreamOffset.init(rawValue:)) }
    }

    /// The stream's extent and committed offsets; nil when no stream has that name.
    public func streamInfo(_ name: String) -> StreamInfo? {
        core.withLock { c in
            guard let id = c.state.streamIDs[name], let s = c.state.streams[id] else { return nil }
            return s.info
        }
    }

    func streamID(_ name: String) throws(QueueError) -> UInt64 {
        try core.withLock { c throws(QueueError) in
            try c.usable()
            guard let id = c.state.streamIDs[name] else { throw QueueError(.notFound, "no stream named '\(name)'") }
            return id
        }
    }
}
