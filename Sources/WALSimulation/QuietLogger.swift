import Logging

/// A logger that drops everything: for tests and torture runs that open thousands of logs, whose lines would
/// bury the run's own output.
public let quietLogger = Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }
