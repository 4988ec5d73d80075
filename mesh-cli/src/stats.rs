//! Order statistics for the demo's latency figures.

use std::time::Duration;

/// Summary of a set of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The median.
    pub median: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
    /// The largest sample.
    pub max: Duration,
}

/// Summarises `samples`; `None` when there are none.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    Some(Summary {
        count: sorted.len(),
        median: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: sorted[sorted.len() - 1],
    })
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p`% of
/// the samples at or below it.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with a precision that suits the magnitude (`0.42 ms`, `12.3 ms`, `1.25 s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!(
            (s.count, s.median, s.p99, s.max),
            (100, ms(50), ms(99), ms(100))
        );
        let one = summarize(&[ms(7)]).unwrap();
        assert_eq!((one.median, one.p99, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(format_duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(format_duration(ms(250)), "250 ms");
        assert_eq!(format_duration(ms(1250)), "1.25 s");
    }
}
