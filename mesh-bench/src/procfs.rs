//! Resident memory, threads and CPU time, read from /proc.

use std::time::Duration;

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

/// CPU time the live threads of a process have used so far, from each thread's
/// schedstat (nanoseconds, where /proc/PID/stat only counts 10 ms ticks).
pub fn cpu_time(pid: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = dir
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| {
            text.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    Duration::from_nanos(ns)
}

/// CPU used between two readings; zero if threads that ran in between have exited.
pub fn cpu_since(before: Duration, after: Duration) -> Duration {
    after.checked_sub(before).unwrap_or_default()
}

/// Datagrams the kernel dropped, machine-wide, because a UDP socket's receive buffer was
/// full (`RcvbufErrors` in /proc/net/snmp). Machine-wide: other programs' drops count too.
pub fn udp_rcvbuf_errors() -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_threads_and_cpu_time() {
        assert!(rss_bytes("self") > 0);
        assert!(threads("self") >= 1);
        assert!(cpu_time("self") > Duration::ZERO);
        assert_eq!(
            cpu_since(Duration::from_secs(2), Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
