//! What a keyring costs: sustained writes and propagation latency with every datagram
//! sealed, against the same runs in plaintext, interleaved so both see the same machine.

use std::time::Duration;

use mesh_core::Config;

use crate::propagation::{self, Params};
use crate::report::{count, fmt, median, percentile, verdict, Report, Table};
use crate::throughput;

/// Interleaved plaintext/keyed rounds per figure; the medians are quoted.
const ROUNDS: usize = 3;
/// The rate the cost target is stated at.
const RATE: u64 = 100_000;

fn keyed(key: &mesh_core::Key) -> impl Fn(&mut Config) + '_ {
    move |c: &mut Config| c.keyring = vec![key.clone()]
}

fn plain(_: &mut Config) {}

struct Figures {
    achieved: Vec<f64>,
    lag_p99_ms: Vec<f64>,
    bytes_per_write: Vec<f64>,
    propagation_p50_ms: Vec<f64>,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            achieved: Vec::new(),
            lag_p99_ms: Vec::new(),
            bytes_per_write: Vec::new(),
            propagation_p50_ms: Vec::new(),
        }
    }

    fn measure(&mut self, rate: u64, run_for: Duration, p: &Params, tweak: impl Fn(&mut Config)) {
        let s = throughput::step(Some(rate), run_for, &tweak);
        self.achieved.push(s.written as f64 / s.secs);
        self.lag_p99_ms.push(percentile(&s.lag_sorted_ms, 99.0));
        self.bytes_per_write.push(s.bytes_per_write);
        let o = propagation::measure(5, 0.0, p, &tweak);
        self.propagation_p50_ms.push(percentile(&o.sorted_ms, 50.0));
    }
}

pub fn run(report: &mut Report, smoke: bool) {
    let (rounds, rate, run_for) = if smoke {
        (1, 2_000, Duration::from_millis(300))
    } else {
        (ROUNDS, RATE, Duration::from_secs(3))
    };
    let mut p = Params::new(smoke);
    p.writes = if smoke { 20 } else { 500 };
    let key = mesh_core::generate_key().expect("entropy for a key");
    let (mut plain_f, mut keyed_f) = (Figures::new(), Figures::new());
    for _ in 0..rounds {
        plain_f.measure(rate, run_for, &p, plain);
        keyed_f.measure(rate, run_for, &p, keyed(&key));
    }
    let mut t = Table::new(
        "Cost of a keyring (every datagram sealed)",
        &["figure", "plaintext", "keyed", "keyed / plaintext"],
    );
    let rows: [(&str, &Vec<f64>, &Vec<f64>); 4] = [
        (
            "writes/s achieved at the offered rate",
            &plain_f.achieved,
            &keyed_f.achieved,
        ),
        (
            "replication lag p99 ms",
            &plain_f.lag_p99_ms,
            &keyed_f.lag_p99_ms,
        ),
        (
            "bytes sent per write (all nodes)",
            &plain_f.bytes_per_write,
            &keyed_f.bytes_per_write,
        ),
        (
            "propagation p50 ms, 5 nodes, no loss",
            &plain_f.propagation_p50_ms,
            &keyed_f.propagation_p50_ms,
        ),
    ];
    let mut ratios = Vec::new();
    for (name, a, b) in rows {
        let (a, b) = (median(a), median(b));
        ratios.push(b / a);
        t.row(vec![name.into(), fmt(a), fmt(b), format!("{:.3}", b / a)]);
    }
    t.note(format!(
        "Medians of {rounds} interleaved round(s) (plaintext, then keyed, each on a fresh 5-node mesh): \
         {} s of writes offered at {}/s on one node, then {} propagation writes paced {} ms apart. \
         Keyed: XChaCha20-Poly1305 with one key.",
        run_for.as_secs_f64(),
        count(rate),
        p.writes,
        p.pace.as_millis()
    ));
    report.add(t);
    let mut tt = Table::new("Keyring cost targets", &["target", "figure", "verdict"]);
    tt.row(vec![
        format!(
            "keyed achieves ≥ 90% of plaintext writes/s at {}/s",
            count(rate)
        ),
        format!("{:.1}%", ratios[0] * 100.0),
        verdict(ratios[0] >= 0.9),
    ]);
    tt.row(vec![
        "propagation p50 unchanged within noise (keyed / plaintext ≤ 1.2)".into(),
        format!("{:.3}", ratios[3]),
        verdict(ratios[3] <= 1.2),
    ]);
    report.add(tt);
}
