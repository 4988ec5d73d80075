//! Micro-benchmarks of the core: local writes and reads through the public `Node` API and
//! straight on the engine, the wire codec, and replica merges.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mesh_core::replica::{Entry, Replica};
use mesh_core::wire::{
    self, Ack, Data, Delta, Frame, Group, Heartbeat, Message, Packet, WireEntry,
};
use mesh_core::{Config, Engine, Node, NoncePrefix, Now, Value};

const KEYS: usize = 100_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key/{i:08}")).collect()
}

fn value_100(i: usize) -> Value {
    Value::String(format!("{i:0>100}"))
}

fn started_node() -> Node {
    let mut c = Config::new("bench", 0);
    c.host = "127.0.0.1".into();
    let node = Node::new(c).expect("node");
    node.start().expect("start");
    node
}

fn now() -> Now {
    Now {
        mono_us: 1_000_000,
        wall_ms: 1_767_225_600_000,
    }
}

fn node_ops(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(1));
    let node = started_node();
    let mut i = 0usize;
    g.bench_function("set int (started, no peers)", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            node.set(&keys[i], i as i64).expect("set");
        })
    });
    g.bench_function("set 100-byte string", |b| {
        let values: Vec<Value> = (0..1024).map(value_100).collect();
        b.iter(|| {
            i = (i + 1) % KEYS;
            node.set(&keys[i], values[i % 1024].clone()).expect("set");
        })
    });
    g.bench_function("get (100k keys held)", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(node.get(&keys[i]))
        })
    });
    g.finish();
    node.stop();
}

fn engine_ops(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    let mut engine = Engine::new(Config::new("bench", 0), 1, 1, NoncePrefix([1; 16]), now());
    engine.set_emit_state_events(false);
    let mut i = 0usize;
    g.bench_function("set int", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            engine
                .set(now(), &keys[i], Value::Int(i as i64))
                .expect("set");
        })
    });
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(engine.get(&keys[i]));
        })
    });
    g.finish();
}

fn sample_delta(entries: usize) -> Delta {
    Delta {
        groups: vec![Group {
            origin: 0x1234_5678_9abc_def0,
            lo: 1,
            hi: entries as u64,
            entries: (0..entries)
                .map(|i| WireEntry {
                    seq: i as u64 + 1,
                    hlc: 0x0190_0000_0000_0000 + i as u64,
                    key: format!("key/{i:08}").into(),
                    value: Some(value_100(i)),
                    expires: None,
                })
                .collect(),
        }],
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let cluster = wire::cluster_id("default");
    // A full data datagram: what pushes and sync streams send.
    let message = wire::encode_message(&Message::Delta(sample_delta(7)));
    let data_packet = Packet {
        src_inc: 0x0190_0000_0000_0001,
        dst_inc: 0x0190_0000_0000_0002,
        src_session: 0,
        dst_session: 0,
        frames: vec![
            Frame::Ack(Ack {
                cumulative: 1000,
                ranges: vec![(1002, 1004)],
                delay_us: 0,
            }),
            Frame::Data(Data {
                seq: 1001,
                msg_id: 77,
                frag: 0,
                frags: 1,
                bytes: message.clone(),
            }),
        ],
    };
    let datagram = wire::encode_packet(cluster, &data_packet);
    g.throughput(Throughput::Bytes(datagram.len() as u64));
    g.bench_function(format!("encode data packet ({} B)", datagram.len()), |b| {
        b.iter(|| black_box(wire::encode_packet(cluster, black_box(&data_packet))))
    });
    g.bench_function(format!("decode data packet ({} B)", datagram.len()), |b| {
        b.iter(|| black_box(wire::decode_packet(cluster, black_box(&datagram))))
    });
    g.bench_function("decode delta message (7 entries of 100 B)", |b| {
        b.iter(|| black_box(wire::decode_message(black_box(&message))))
    });
    let heartbeat = Packet {
        src_inc: 1,
        dst_inc: 2,
        src_session: 0,
        dst_session: 0,
        frames: vec![Frame::Heartbeat(Heartbeat {
            node_id: "node-17".into(),
            fingerprint: 0xdead_beef,
            reply: false,
            members: 0,
            gossip: vec![],
        })],
    };
    let hb = wire::encode_packet(cluster, &heartbeat);
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("encode heartbeat ({} B)", hb.len()), |b| {
        b.iter(|| black_box(wire::encode_packet(cluster, black_box(&heartbeat))))
    });
    g.bench_function(format!("decode heartbeat ({} B)", hb.len()), |b| {
        b.iter(|| black_box(wire::decode_packet(cluster, black_box(&hb))))
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("replica merge");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(10);
    let entries: Vec<Entry> = (0..KEYS)
        .map(|i| Entry {
            value: Some(Value::Int(i as i64)),
            hlc: 1000 + i as u64,
            origin: 7,
            seq: i as u64 + 1,
            expires: None,
        })
        .collect();
    g.bench_function("100k new keys into an empty replica", |b| {
        b.iter_batched(
            || Replica::new(1),
            |mut r| {
                for (k, e) in keys.iter().zip(&entries) {
                    r.merge(k, e.clone());
                }
                r
            },
            BatchSize::LargeInput,
        )
    });
    let mut full = Replica::new(1);
    for (k, e) in keys.iter().zip(&entries) {
        full.merge(k, e.clone());
    }
    g.bench_function("100k duplicates (already held, ignored)", |b| {
        b.iter(|| {
            for (k, e) in keys.iter().zip(&entries) {
                black_box(full.merge(k, e.clone()));
            }
        })
    });
    g.finish();
}

/// Sealing and opening one full 1,200-byte datagram (XChaCha20-Poly1305).
fn seal(c: &mut Criterion) {
    use mesh_core::seal::Seal;
    let mut g = c.benchmark_group("seal");
    let cluster = wire::cluster_id("default");
    let key = mesh_core::Key::from_bytes(&[7; 32]).unwrap();
    let mut sender = Seal::new("a", std::slice::from_ref(&key), NoncePrefix([1; 16]));
    let mut receiver = Seal::new("b", std::slice::from_ref(&key), NoncePrefix([2; 16]));
    let from: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut packet = Packet {
        src_inc: 0x0190_0000_0000_0001,
        dst_inc: 0x0190_0000_0000_0002,
        src_session: 0x1234_5678,
        dst_session: 0x8765_4321,
        frames: vec![Frame::Data(Data {
            seq: 1001,
            msg_id: 77,
            frag: 0,
            frags: 1,
            bytes: Vec::new(),
        })],
    };
    // Grow the fragment until the sealed datagram is 1,200 bytes.
    while sender.seal_packet(cluster, &packet).len() < 1200 {
        if let Frame::Data(d) = &mut packet.frames[0] {
            d.bytes.push(0xab);
        }
    }
    let size = sender.seal_packet(cluster, &packet).len();
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function(format!("seal ({size} B)"), |b| {
        b.iter(|| black_box(sender.seal_packet(cluster, black_box(&packet))))
    });
    // Each datagram opened once: a fresh nonce, as on the wire (a repeat is a replay).
    g.bench_function(format!("open ({size} B)"), |b| {
        b.iter_batched(
            || sender.seal_packet(cluster, &packet),
            |d| black_box(receiver.open_packet(now(), from, cluster, &d).is_ok()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// `count` distinct prefixes `room/00000/`, `room/00001/`, ...: one length, the common case.
fn room_prefixes(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("room/{i:05}/")).collect()
}

fn watch_dispatch(c: &mut Criterion) {
    use mesh_core::watch::{Change, WatchRegistry};
    use mesh_core::{ChangeOrigin, Event};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let calls = Arc::new(AtomicU64::new(0));
    let counter = |calls: &Arc<AtomicU64>| {
        let calls = Arc::clone(calls);
        Arc::new(move |_: &Change<'_>| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
    };
    let event = Event::StateChanged {
        key: "room/00042/temperature".into(),
        value: Some(Value::Float(21.5)),
        origin: ChangeOrigin::Sync,
    };
    let mut g = c.benchmark_group("watch dispatch");
    g.throughput(Throughput::Elements(1));
    for count in [1, 10_000] {
        // Either way exactly one watch matches the key: the cost measured is finding it.
        let prefixes = if count == 1 {
            vec!["room/00042/".to_owned()]
        } else {
            room_prefixes(count)
        };
        let registry = WatchRegistry::default();
        for prefix in &prefixes {
            registry.add(prefix, counter(&calls));
        }
        g.bench_function(format!("one change, {count} watches registered"), |b| {
            b.iter(|| black_box(registry.dispatch(black_box(&event))))
        });
    }
    g.finish();

    // End to end: a local write returns once its watch has run on the callback thread.
    let mut g = c.benchmark_group("node set with watches");
    g.throughput(Throughput::Elements(1));
    for count in [1, 10_000] {
        let node = started_node();
        let prefixes = if count == 1 {
            vec!["room/00000/".to_owned()]
        } else {
            room_prefixes(count)
        };
        let watches: Vec<_> = prefixes
            .into_iter()
            .map(|prefix| {
                let calls = Arc::clone(&calls);
                node.watch(prefix, move |_: &Change<'_>| {
                    calls.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        let mut i = 0u64;
        g.bench_function(format!("set, {count} watches registered"), |b| {
            b.iter(|| {
                i += 1;
                node.set("room/00000/temperature", i as i64).expect("set");
            })
        });
        drop(watches);
        node.stop();
    }
    g.finish();
    black_box(calls.load(Ordering::Relaxed));
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = quick();
    targets = node_ops, engine_ops, codec, merge, seal, watch_dispatch
}
criterion_main!(benches);
