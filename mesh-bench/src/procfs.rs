//! Resident memory, threads and CPU time, read from /proc.

use std::time::Duration;

/// Clock ticks per second of /proc/*/stat times. Linux reports `USER_HZ`, fixed at 100
/// on every architecture this runs on.
const USER_HZ: f64 = 100.0;

fn status_field(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Resident set size of a process in bytes (`"self"` for this one).
pub fn rss_bytes(pid: &str) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or(0) * 1024
}

/// Threads of a process.
pub fn threads(pid: &str) -> u64 {
    status_field(pid, "Threads:").unwrap_or(0)
}

/// User plus system CPU time a process used so far.
pub fn cpu_time(pid: &str) -> Duration {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    stat_cpu(&text)
}

/// utime + stime of a /proc stat line. The command name may hold spaces, so fields are
/// counted from the closing parenthesis.
fn stat_cpu(text: &str) -> Duration {
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the full line, utime 14 and stime 15.
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ticks = tick(11) + tick(12);
    Duration::from_secs_f64(ticks as f64 / USER_HZ)
}

/// CPU time and number of this process's threads whose name starts with `prefix`.
pub fn own_threads_cpu(prefix: &str) -> (usize, Duration) {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, Duration::ZERO);
    };
    let mut n = 0;
    let mut total = Duration::ZERO;
    for task in dir.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            n += 1;
            total += std::fs::read_to_string(path.join("stat"))
                .map(|t| stat_cpu(&t))
                .unwrap_or_default();
        }
    }
    (n, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fields_are_counted_after_the_command_name() {
        let line = "42 (mesh n:a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(stat_cpu(line), Duration::from_secs(3));
    }

    #[test]
    fn this_process_has_memory_and_a_thread() {
        assert!(rss_bytes("self") > 0);
        assert!(threads("self") >= 1);
    }
}
