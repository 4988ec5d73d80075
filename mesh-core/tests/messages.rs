//! User messages between real nodes over loopback UDP: the message handler gets them in
//! send order, on the callback thread, and they never enter the state.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_core::{Config, Error, Event, Node};

/// Messages received, `(sender, data)`.
type Inbox = Vec<(String, Vec<u8>)>;

fn node(id: &str) -> Node {
    let mut config = Config::new(id, 0);
    config.host = "127.0.0.1".into();
    config.heartbeat_interval = Duration::from_millis(100);
    config.peer_timeout = Duration::from_secs(2);
    Node::new(config).unwrap()
}

fn wait(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn the_message_handler_gets_every_message_in_send_order() {
    let a = node("a");
    let b = node("b");
    let got: Arc<Mutex<Inbox>> = Arc::default();
    let events = Arc::new(Mutex::new(0usize));
    {
        let got = Arc::clone(&got);
        b.set_message_handler(move |sender, data| {
            got.lock().unwrap().push((sender.to_owned(), data.to_vec()))
        });
        let events = Arc::clone(&events);
        b.set_event_handler(move |event| {
            if matches!(event, Event::Message { .. }) {
                *events.lock().unwrap() += 1;
            }
        });
    }
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    assert!(wait(|| a.message_peers() == ["b"]));
    let sent: Vec<Vec<u8>> = (0..500u32)
        .map(|i| i.to_be_bytes().repeat(1 + (i as usize % 900)))
        .collect();
    for data in &sent {
        a.send("b", data).unwrap();
    }
    assert!(wait(|| got.lock().unwrap().len() == sent.len()));
    let got = got.lock().unwrap();
    assert!(got.iter().all(|(sender, _)| sender == "a"));
    assert!(got.iter().map(|(_, d)| d).eq(sent.iter()), "in send order");
    assert_eq!(
        *events.lock().unwrap(),
        sent.len(),
        "the event handler sees them too"
    );
    assert!(b.is_empty() && a.is_empty(), "not stored");
    assert_eq!(b.status().counters.messages_received, sent.len() as u64);

    assert!(matches!(a.send("c", b"x"), Err(Error::PeerNotFound { .. })));
    a.stop();
    assert!(matches!(a.send("b", b"x"), Err(Error::Stopped)));
}
