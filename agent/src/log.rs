//! The agent's log: one line per event on standard error, with a UTC timestamp and a level —
//! what `journalctl` and `kubectl logs` show. Diagnostics of a rejected policy follow on the
//! next lines, indented as `nfcc check` renders them.

/// How much a line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something was done.
    Info,
    /// Something needs a look but nothing failed.
    Warn,
    /// Something was not done.
    Error,
}

/// Writes one event.
pub fn log(level: Level, message: &str) {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let level = match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    eprintln!("{now} {level} {message}");
}
