//! The node's log on standard error (`--log-level`, `--log-format text|json`), with
//! floods of identical lines held back: whatever logs in a loop (a peer repeating the
//! same fault, a failing system call), a line is written at most once per window, and
//! the next one written says how many were held back.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::json;

/// How often one identical line may be written.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);
/// Distinct lines remembered; past this, lines whose window has ended are forgotten.
const REMEMBERED: usize = 1024;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL TARGET: MESSAGE`, for people.
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message` (and `repeated`).
    Json,
}

/// Parses `--log-level`: off, error, warn, info, debug or trace.
pub fn parse_level(text: &str) -> Result<log::LevelFilter, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not one of off, error, warn, info, debug, trace"))
}

/// Installs the logger for the whole process.
pub fn init(format: LogFormat, level: log::LevelFilter) -> Result<(), String> {
    let logger = Logger {
        format,
        level,
        limiter: Mutex::new(Limiter::new(REPEAT_WINDOW)),
    };
    // The logger lives as long as the process.
    log::set_logger(Box::leak(Box::new(logger)))
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    log::set_max_level(level);
    Ok(())
}

struct Logger {
    format: LogFormat,
    level: log::LevelFilter,
    limiter: Mutex<Limiter>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let key = format!("{}\u{0}{}\u{0}{message}", record.level(), record.target());
        let Admit::Write { held_back } = self.limiter.lock().admit(&key, Instant::now()) else {
            return;
        };
        let line = render(self.format, SystemTime::now(), record, &message, held_back);
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn render(
    format: LogFormat,
    time: SystemTime,
    record: &log::Record<'_>,
    message: &str,
    held_back: u64,
) -> String {
    let ts = humantime::format_rfc3339_millis(time).to_string();
    match format {
        LogFormat::Text => {
            let mut line = format!("{ts} {:<5} {}: {message}", record.level(), record.target());
            if held_back > 0 {
                line.push_str(&format!(
                    " (and {held_back} identical lines held back before this one)"
                ));
            }
            line
        }
        LogFormat::Json => {
            let mut value = json!({
                "ts": ts,
                "level": record.level().as_str(),
                "target": record.target(),
                "message": message,
            });
            if held_back > 0 {
                value["repeated"] = json!(held_back);
            }
            value.to_string()
        }
    }
}

/// Whether a line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it, saying how many identical lines were held back since it was last written.
    Write {
        /// Identical lines not written since the last one that was.
        held_back: u64,
    },
    /// Hold it back: written less than a window ago.
    HoldBack,
}

/// Lets each distinct line through once per window.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    seen: HashMap<String, Slot>,
}

#[derive(Debug)]
struct Slot {
    written_at: Instant,
    held_back: u64,
}

impl Limiter {
    /// A limiter letting each line through once per `window`.
    pub fn new(window: Duration) -> Limiter {
        Limiter {
            window,
            seen: HashMap::new(),
        }
    }

    /// Whether `line`, logged at `now`, is written.
    pub fn admit(&mut self, line: &str, now: Instant) -> Admit {
        if let Some(slot) = self.seen.get_mut(line) {
            if now.duration_since(slot.written_at) < self.window {
                slot.held_back += 1;
                return Admit::HoldBack;
            }
            let held_back = std::mem::take(&mut slot.held_back);
            slot.written_at = now;
            return Admit::Write { held_back };
        }
        if self.seen.len() >= REMEMBERED {
            let window = self.window;
            self.seen
                .retain(|_, slot| now.duration_since(slot.written_at) < window);
            if self.seen.len() >= REMEMBERED {
                // Every remembered line is recent: forgetting them lets at most one more
                // copy of each through, while remembering more would let memory grow.
                self.seen.clear();
            }
        }
        self.seen.insert(
            line.to_owned(),
            Slot {
                written_at: now,
                held_back: 0,
            },
        );
        Admit::Write { held_back: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identical_line_is_written_once_per_window() {
        let start = Instant::now();
        let mut limiter = Limiter::new(Duration::from_secs(10));
        assert_eq!(limiter.admit("a", start), Admit::Write { held_back: 0 });
        for i in 1..=1000 {
            let at = start + Duration::from_millis(i);
            assert_eq!(limiter.admit("a", at), Admit::HoldBack);
        }
        assert_eq!(
            limiter.admit("b", start + Duration::from_secs(1)),
            Admit::Write { held_back: 0 },
            "other lines are not held back"
        );
        assert_eq!(
            limiter.admit("a", start + Duration::from_secs(10)),
            Admit::Write { held_back: 1000 }
        );
        assert_eq!(
            limiter.admit("a", start + Duration::from_secs(11)),
            Admit::HoldBack
        );
    }

    #[test]
    fn memory_stays_bounded_under_distinct_lines() {
        let now = Instant::now();
        let mut limiter = Limiter::new(Duration::from_secs(10));
        for i in 0..10 * REMEMBERED {
            assert_eq!(
                limiter.admit(&format!("line {i}"), now),
                Admit::Write { held_back: 0 }
            );
        }
        assert!(limiter.seen.len() <= REMEMBERED);
    }

    #[test]
    fn json_lines_carry_the_fields_and_the_count_held_back() {
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .target("mesh_core::engine")
            .args(format_args!("x"))
            .build();
        let line = render(
            LogFormat::Json,
            SystemTime::UNIX_EPOCH,
            &record,
            "n1: dropped",
            7,
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["target"], "mesh_core::engine");
        assert_eq!(value["message"], "n1: dropped");
        assert_eq!(value["repeated"], 7);
        assert_eq!(value["ts"], "1970-01-01T00:00:00.000Z");
        let text = render(
            LogFormat::Text,
            SystemTime::UNIX_EPOCH,
            &record,
            "n1: dropped",
            0,
        );
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z WARN  mesh_core::engine: n1: dropped"
        );
    }
}
