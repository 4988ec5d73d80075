//! Thread budget of a node. Alone in its test binary so that no other test's threads
//! come and go while it counts.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use mesh_core::{Config, Node};

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

#[test]
fn a_node_uses_at_most_three_threads_and_returns_them_on_stop() {
    let before = thread_count();
    let mut config = Config::new("threads", 0);
    config.host = "127.0.0.1".into();
    let node = Node::new(config).unwrap();
    node.start().unwrap();
    node.set("k", 1).unwrap();
    let during = thread_count();
    assert!(during > before, "the node runs threads of its own");
    assert!(
        during - before <= 3,
        "{} threads for one node",
        during - before
    );
    node.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while thread_count() > before {
        assert!(Instant::now() < deadline, "threads left behind after stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}
