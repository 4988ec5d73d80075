//! Metrics of real nodes on 127.0.0.1: what a scrape shows after traffic.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use mesh_core::{Config, KeyQuery, Node};

fn node(id: &str) -> Node {
    let mut c = Config::new(id, 0);
    c.host = "127.0.0.1".into();
    c.heartbeat_interval = Duration::from_millis(200);
    c.peer_timeout = Duration::from_secs(1);
    Node::new(c).unwrap()
}

/// The value of the first sample whose series starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn a_scrape_shows_the_traffic_peers_and_propagation_of_a_write() {
    let a = node("writer");
    let b = node("reader");
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    a.set("temperature", 72.5).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.get("temperature").is_none() {
        assert!(Instant::now() < deadline, "the write never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }

    let text = b.metrics_text();
    let lag_count = r#"mesh_sync_propagation_lag_seconds_count{node="reader"}"#;
    assert_eq!(sample(&text, lag_count), Some(1.0), "{text}");
    let received = r#"mesh_sync_received_bytes_total{node="reader"}"#;
    assert!(sample(&text, received).unwrap() > 0.0, "{text}");
    assert_eq!(sample(&text, r#"mesh_sync_keys{node="reader"}"#), Some(1.0));
    let alive = r#"mesh_sync_peers{node="reader",state="alive"}"#;
    assert_eq!(sample(&text, alive), Some(1.0), "{text}");
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.contains(r#"node="reader""#)),
        "a series without the node label:\n{text}"
    );

    let page = b.browse_keys(&KeyQuery {
        contains: "temp",
        limit: 10,
        ..KeyQuery::default()
    });
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].origin_node.as_deref(), Some("writer"));
}

#[test]
fn a_scrape_does_not_count_expired_keys() {
    // Not started: no network thread expires the key, so only the scrape itself can.
    let a = node("expiring");
    a.set_with_ttl("lease", 1, Duration::from_millis(20))
        .unwrap();
    a.set("kept", 2).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let text = a.metrics_text();
    assert_eq!(sample(&text, "mesh_sync_keys{"), Some(1.0), "{text}");
    assert_eq!(a.metrics_snapshot().status.data_keys, 1);
}
