// The queue crash tests' child: publishes from several tasks, consumes with acks, nacks, unacked deliveries
// and consumer restarts, appends to a stream and commits offsets, all at once, with checkpoints and
// reclamation running, and writes one line per completed step to stdout (each with one write(2)) until it
// is killed:
//   P <id> <body>              publish confirmed
//   D <id> <count> <redelivered> <body>   delivery received
//   a <id>                     ack called (it may or may not be durable when the child dies)
//   A <id>                     ack returned (durable)
//   S <offset> <body>          stream append confirmed
//   C <offset>                 offset commit returned
// Usage: QueueCrashChild <store directory> <run tag>
//        QueueCrashChild <store directory> <run tag> exactly-once <first idempotent sequence>
// (the second: transactions, idempotent producers and half messages; see ExactlyOnce.swift)
import DurableQueue
import Glibc
import Logging

func emit(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

/// Small segments, frames and checkpoint interval, so that a short run rolls segments, checkpoints and
/// reclaims; maintenance every 20 ms.
func crashChildOptions() -> StoreOptions {
    var options = StoreOptions()
    options.logger = Logger(label: "crash-child") { _ in SwiftLogNoOpLogHandler() }
    options.log.segmentBytes = 64 << 10
    options.log.frameBytesMax = 16 << 10
    options.log.recordBytesMax = (16 << 10) - 4
    options.log.pendingBytesMax = 64 << 10
    options.checkpointEveryBytes = 32 << 10
    options.maintenanceInterval = .milliseconds(20)
    return options
}

let arguments = CommandLine.arguments
if arguments.count == 5, arguments[3] == "exactly-once", let first = UInt64(arguments[4]) {
    await runExactlyOnceWorkload(directory: arguments[1], run: arguments[2], firstSequence: first)
    exit(0)
}
guard arguments.count == 3 else {
    emit("usage: QueueCrashChild DIR TAG [exactly-once FIRST-SEQUENCE]")
    exit(2)
}
let run = arguments[2]

let store: QueueStore
do {
    store = try await QueueStore.open(directory: arguments[1], options: crashChildOptions())
    try await store.declareQueue("q")
    try await store.declareStream("s", options: StreamOptions(maxBytes: 16 << 10))
} catch {
    emit("E open: \(error)")
    exit(1)
}
emit("O")

try await withThrowingTaskGroup(of: Void.self) { group in
    for task in 0..<4 {
        group.addTask {
            var i = 0
            while true {
                // Publish about as fast as the consumer settles, so that old segments die and get reclaimed.
                while (store.queueInfo("q")?.ready ?? 0) > 200 { try await Task.sleep(for: .milliseconds(1)) }
                let body = "\(run)-\(task)-\(i)-" + String(repeating: "x", count: (i * 37) % 300)
                let id = try await store.publish(to: "q", Message(body: Array(body.utf8)))
                emit("P \(id) \(body)")
                i += 1
            }
        }
    }
    group.addTask {
        var n = 0
        while true {
            // A consumer takes 100 deliveries, leaves some unacked and is then cancelled (they go back).
            let consumer = try store.consume(queue: "q", prefetch: 32)
            var taken = 0
            for try await d in consumer.deliveries {
                let body = String(decoding: d.message.body, as: UTF8.self)
                emit("D \(d.messageID) \(d.deliveryCount) \(d.redelivered ? 1 : 0) \(body)")
                n += 1
                switch n % 5 {
                case 0, 1, 2:
                    emit("a \(d.messageID)")
                    try await consumer.ack(d.tag)
                    emit("A \(d.messageID)")
                case 3:
                    try await consumer.nack(d.tag, requeue: true)
                default:
                    break
                }
                taken += 1
                if taken == 100 { break }
            }
            consumer.cancel()
        }
    }
    group.addTask {
        var i = 0
        while true {
            let body = "\(run)-s\(i)"
            let offset = try await store.append(to: "s", Message(body: Array(body.utf8)))
            emit("S \(offset) \(body)")
            if i % 10 == 9 {
                try await store.commitOffset(stream: "s", group: "g", offset: offset.next)
                emit("C \(offset.next)")
            }
            i += 1
        }
    }
    try await group.next()
}
