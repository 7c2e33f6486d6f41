import DequeModule

/// A queue of values kept in chunks of `chunkCapacity` elements: appended at the back, taken from the front,
/// read and changed in place by position.
///
/// Why not one `Deque`: a checkpoint takes a copy of the store's state, which shares every queue's storage,
/// and the next change to a queue then copied all of it (copy-on-write), under the store's lock: a queue of a
/// million messages stalled the publish after each checkpoint for 16-20 ms. Here a copy shares the chunks, and
/// a change copies the list of chunks (one reference per `chunkCapacity` elements) and the one chunk it
/// touches. Taking from the front never copies a chunk: it moves an offset into the first one.
///
/// Every chunk but the last holds exactly `chunkCapacity` elements (the first counts those taken from it), so a
/// position maps to its chunk by division.
struct ChunkedDeque<Element> {
    static var chunkCapacity: Int { 4096 }

    private var chunks: Deque<[Element]> = []
    /// How many elements of the first chunk were taken from the front.
    private var head = 0
    private(set) var count = 0

    init() {}

    init<S: Sequence>(_ elements: S) where S.Element == Element {
        append(contentsOf: elements)
    }

    var isEmpty: Bool { count == 0 }

    mutating func append(_ element: Element) {
        if let last = chunks.indices.last, chunks[last].count < Self.chunkCapacity {
            chunks[last].append(element)
        } else {
            var chunk: [Element] = []
            chunk.reserveCapacity(Self.chunkCapacity)
            chunk.append(element)
            chunks.append(chunk)
        }
        count += 1
    }

    mutating func append<S: Sequence>(contentsOf elements: S) where S.Element == Element {
        for element in elements { append(element) }
    }

    /// Takes the first element, or nil when there is none.
    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = chunks[0][head]
        count -= 1
        head += 1
        if head == chunks[0].count {
            chunks.removeFirst()
            head = 0
        }
        if count == 0 {
            chunks.removeAll()
            head = 0
        }
        return element
    }

    private func locate(_ position: Int) -> (chunk: Int, offset: Int) {
        precondition(position >= 0 && position < count, "position \(position) of \(count)")
        let p = head + position
        return (p / Self.chunkCapacity, p % Self.chunkCapacity)
    }
}

extension ChunkedDeque: RandomAccessCollection, MutableCollection {
    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(position: Int) -> Element {
        get {
            let (c, o) = locate(position)
            return chunks[c][o]
        }
        _modify {
            let (c, o) = locate(position)
            yield &chunks[c][o]
        }
    }

    /// Walks the chunks, not positions: no division per element.
    struct Iterator: IteratorProtocol {
        private let chunks: Deque<[Element]>
        private var chunk = 0
        private var offset: Int

        fileprivate init(chunks: Deque<[Element]>, head: Int) {
            self.chunks = chunks
            offset = head
        }

        mutating func next() -> Element? {
            while chunk < chunks.count {
                if offset < chunks[chunk].count {
                    defer { offset += 1 }
                    return chunks[chunk][offset]
                }
                chunk += 1
                offset = 0
            }
            return nil
        }
    }

    func makeIterator() -> Iterator { Iterator(chunks: chunks, head: head) }
}

extension ChunkedDeque: ExpressibleByArrayLiteral {
    init(arrayLiteral elements: Element...) { self.init(elements) }
}

extension ChunkedDeque: Equatable where Element: Equatable {
    static func == (a: Self, b: Self) -> Bool { a.count == b.count && a.elementsEqual(b) }
}

extension ChunkedDeque: Sendable where Element: Sendable {}
