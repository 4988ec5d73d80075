//! Callbacks of local writes run before the write returns, and watches follow the keys
//! under a prefix, on real nodes over 127.0.0.1.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mesh_core::{Change, ChangeOrigin, Config, Event, Node, Value};
use parking_lot::Mutex;

/// Long enough that a write returning before its callback ran cannot go unnoticed.
const SLOW_CALLBACK: Duration = Duration::from_millis(30);
/// How long a test waits for something that must happen (a deadlock shows as a timeout).
const PATIENCE: Duration = Duration::from_secs(20);

fn node(id: &str) -> Arc<Node> {
    let mut config = Config::new(id, 0);
    config.host = "127.0.0.1".into();
    config.heartbeat_interval = Duration::from_millis(100);
    config.sync_interval = Duration::from_millis(300);
    Arc::new(Node::new(config).unwrap())
}

fn pair() -> (Arc<Node>, Arc<Node>) {
    let a = node("a");
    let b = node("b");
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    (a, b)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on another thread and fails if it does not finish within `PATIENCE`.
fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{what} did not finish: deadlock"))
}

type Seen = Arc<Mutex<Vec<(String, Option<Value>, ChangeOrigin)>>>;

/// An event handler recording state changes after a pause, like a slow application.
fn slow_recorder(node: &Node) -> Seen {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    node.set_event_handler(move |event| {
        if let Event::StateChanged { key, value, origin } = event {
            thread::sleep(SLOW_CALLBACK);
            log.lock().push((key.clone(), value.clone(), *origin));
        }
    });
    seen
}

#[test]
fn set_and_delete_return_after_their_callback_ran() {
    let node = node("solo");
    let seen = slow_recorder(&node);
    for started in [false, true] {
        if started {
            node.start().unwrap();
        }
        node.set("temperature", 72.5).unwrap();
        assert_eq!(
            seen.lock().last(),
            Some(&(
                "temperature".to_owned(),
                Some(Value::Float(72.5)),
                ChangeOrigin::LocalSet
            )),
            "started: {started}"
        );
        assert!(node.delete("temperature").unwrap());
        assert_eq!(
            seen.lock().last(),
            Some(&("temperature".to_owned(), None, ChangeOrigin::LocalDelete)),
            "started: {started}"
        );
    }
    assert_eq!(seen.lock().len(), 4);
}

#[test]
fn a_write_from_inside_a_callback_returns_at_once() {
    let node = node("reentrant");
    node.start().unwrap();
    let seen: Seen = Arc::default();
    let weak = Arc::downgrade(&node);
    let log = Arc::clone(&seen);
    node.set_event_handler(move |event| {
        if let Event::StateChanged { key, value, origin } = event {
            log.lock().push((key.clone(), value.clone(), *origin));
            if key == "ping" {
                if let Some(node) = weak.upgrade() {
                    // Waiting here for this very thread would never end.
                    node.set("pong", 1).unwrap();
                }
            }
        }
    });
    let writer = Arc::clone(&node);
    finishes("a set whose callback writes", move || {
        writer.set("ping", 0).unwrap()
    });
    // The callback's own write is delivered after the callback returns: in order.
    wait_until("the pong event", || seen.lock().len() == 2);
    let keys: Vec<String> = seen.lock().iter().map(|(k, ..)| k.clone()).collect();
    assert_eq!(keys, ["ping", "pong"]);
}

#[test]
fn nodes_writing_to_each_other_from_callbacks_do_not_deadlock() {
    // Each node's callback writes to the other node: were a callback to wait for the
    // other node's callback thread, two concurrent writes would wait on each other.
    let a = node("cross-a");
    let b = node("cross-b");
    let (weak_a, weak_b) = (Arc::downgrade(&a), Arc::downgrade(&b));
    a.set_event_handler(move |event| {
        if let Event::StateChanged { key, .. } = event {
            if let (Some(b), Some(n)) = (weak_b.upgrade(), key.strip_prefix("to-a/")) {
                thread::sleep(Duration::from_millis(2));
                b.set(&format!("from-a/{n}"), 1).unwrap();
            }
        }
    });
    b.set_event_handler(move |event| {
        if let Event::StateChanged { key, .. } = event {
            if let (Some(a), Some(n)) = (weak_a.upgrade(), key.strip_prefix("to-b/")) {
                thread::sleep(Duration::from_millis(2));
                a.set(&format!("from-b/{n}"), 1).unwrap();
            }
        }
    });
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    finishes("crossed writes", move || {
        let other = thread::spawn(move || {
            for i in 0..20 {
                b2.set(&format!("to-b/{i}"), i).unwrap();
            }
        });
        for i in 0..20 {
            a2.set(&format!("to-a/{i}"), i).unwrap();
        }
        other.join().unwrap();
    });
    wait_until("every crossed write", || a.len() == 40 && b.len() == 40);
}

#[test]
fn stopping_releases_nothing_pending_and_writes_after_stop_do_not_wait() {
    let node = node("stopping");
    let seen = slow_recorder(&node);
    node.start().unwrap();
    node.stop();
    let writer = Arc::clone(&node);
    finishes("a write after stop", move || writer.set("late", 1).unwrap());
    assert!(seen.lock().is_empty(), "no callback runs after stop");
    assert_eq!(node.get("late"), Some(Value::Int(1)));
}

type Changes = Arc<Mutex<Vec<(String, Option<Value>, ChangeOrigin)>>>;

fn record(changes: &Changes) -> impl Fn(&Change<'_>) + Send + Sync + 'static {
    let changes = Arc::clone(changes);
    move |change: &Change<'_>| {
        changes
            .lock()
            .push((change.key.to_owned(), change.value.cloned(), change.origin))
    }
}

#[test]
fn a_watch_sees_only_its_prefix_local_and_remote_and_before_set_returns() {
    let (a, b) = pair();
    let on_a: Changes = Arc::default();
    let on_b: Changes = Arc::default();
    let watch_a = a.watch("sensor/", record(&on_a));
    let watch_b = b.watch("sensor/", record(&on_b));
    assert_eq!(watch_a.prefix(), "sensor/");

    a.set("sensor/temp", 21).unwrap();
    // No event handler is set: the watch alone makes the node report changes, and it
    // has run when `set` returns.
    assert_eq!(
        *on_a.lock(),
        [(
            "sensor/temp".to_owned(),
            Some(Value::Int(21)),
            ChangeOrigin::LocalSet
        )]
    );
    wait_until("the write on b", || b.get("sensor/temp").is_some());
    a.set("door/front", "open").unwrap();
    a.set("sensors", 1).unwrap();
    a.delete("sensor/temp").unwrap();
    wait_until("the delete on b", || {
        b.get("sensor/temp").is_none() && b.len() == 2
    });
    wait_until("b's watch to see the delete", || {
        on_b.lock()
            .last()
            .is_some_and(|(_, value, _)| value.is_none())
    });

    assert_eq!(on_a.lock().len(), 2);
    assert_eq!(
        on_a.lock()[1],
        ("sensor/temp".to_owned(), None, ChangeOrigin::LocalDelete)
    );
    assert_eq!(
        *on_b.lock(),
        [
            (
                "sensor/temp".to_owned(),
                Some(Value::Int(21)),
                ChangeOrigin::Sync
            ),
            ("sensor/temp".to_owned(), None, ChangeOrigin::Sync),
        ]
    );
    drop((watch_a, watch_b));
}

#[test]
fn cancelled_and_dropped_watches_are_not_called_again() {
    let node = node("cancel");
    let kept: Changes = Arc::default();
    let cancelled: Changes = Arc::default();
    let dropped: Changes = Arc::default();
    let keep = node.watch("k", record(&kept));
    let cancel = node.watch("k", record(&cancelled));
    let drop_me = node.watch("", record(&dropped));
    assert_eq!(node.watch_count(), 3);
    node.set("k1", 1).unwrap();
    cancel.cancel();
    drop(drop_me);
    assert_eq!(node.watch_count(), 1);
    node.set("k2", 2).unwrap();
    assert_eq!(kept.lock().len(), 2);
    assert_eq!(cancelled.lock().len(), 1);
    assert_eq!(dropped.lock().len(), 1);
    keep.cancel();
    assert_eq!(node.watch_count(), 0);
    node.set("k3", 3).unwrap();
    assert_eq!(kept.lock().len(), 2);
}

#[test]
fn a_watch_may_cancel_itself_from_its_callback() {
    let node = node("self-cancel");
    let slot: Arc<Mutex<Option<mesh_core::Watch>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0));
    let (slot2, calls2) = (Arc::clone(&slot), Arc::clone(&calls));
    *slot.lock() = Some(node.watch("once", move |_: &Change<'_>| {
        *calls2.lock() += 1;
        let watch = slot2.lock().take();
        drop(watch);
    }));
    node.set("once", 1).unwrap();
    node.set("once", 2).unwrap();
    assert_eq!(*calls.lock(), 1);
    assert_eq!(node.watch_count(), 0);
}

#[test]
fn thousands_of_watches_each_get_their_own_keys() {
    let node = node("many");
    let hits = Arc::new(Mutex::new(vec![0u32; 2000]));
    let watches: Vec<_> = (0..2000)
        .map(|i| {
            let hits = Arc::clone(&hits);
            node.watch(format!("room/{i}/"), move |_: &Change<'_>| {
                hits.lock()[i] += 1;
            })
        })
        .collect();
    for i in (0..2000).step_by(7) {
        node.set(&format!("room/{i}/light"), true).unwrap();
    }
    let hits = hits.lock();
    for (i, &n) in hits.iter().enumerate() {
        assert_eq!(n, u32::from(i % 7 == 0), "room {i}");
    }
    drop(watches);
}
