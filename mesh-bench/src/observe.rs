//! What watching a node costs: a metrics scrape and a page of the dashboard's key list,
//! against states of growing size. Both hold the engine's lock while they run, so these
//! are also the stalls they impose on the network thread.

use std::time::{Duration, Instant};

use mesh_core::{Config, KeyQuery, Node};

use crate::report::{count, fmt, median, ms, Report, Table};

/// Runs `f` `runs` times; the median duration in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            ms(start.elapsed())
        })
        .collect();
    median(&times)
}

pub fn run(report: &mut Report, smoke: bool) {
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let runs = if smoke { 3 } else { 21 };
    let mut t = Table::new(
        "Observing a node: scrape and dashboard page",
        &[
            "live keys",
            "metrics_text ms",
            "first page ms",
            "search page ms",
            "metrics bytes",
        ],
    );
    for &keys in sizes {
        let mut config = Config::new("observed", 0);
        config.host = "127.0.0.1".into();
        let node = Node::new(config).expect("node");
        for i in 0..keys {
            node.set(&format!("sensor/{i:07}"), i as i64).expect("set");
        }
        let mut bytes = 0;
        let scrape = median_ms(runs, || bytes = node.metrics_text().len());
        let first = median_ms(runs, || {
            let page = node.browse_keys(&KeyQuery {
                limit: 50,
                ..KeyQuery::default()
            });
            assert_eq!(page.entries.len(), 50.min(keys));
        });
        let search = median_ms(runs, || {
            let page = node.browse_keys(&KeyQuery {
                contains: "99",
                limit: 50,
                ..KeyQuery::default()
            });
            assert!(!page.entries.is_empty());
        });
        t.row(vec![
            count(keys as u64),
            fmt(scrape),
            fmt(first),
            fmt(search),
            count(bytes as u64),
        ]);
        drop(node);
        std::thread::sleep(Duration::from_millis(10));
    }
    t.note(format!(
        "Median of {runs} calls on an unstarted node holding the keys (values: integers). \
         A page scans every live key once (no index): its cost grows with the state, the \
         scrape's does not."
    ));
    report.add(t);
}
