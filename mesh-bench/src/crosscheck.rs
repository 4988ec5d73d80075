//! The socket-edge byte counts checked against the kernel's. Meant to run alone in a
//! fresh network namespace (scripts/kernel-crosscheck.sh makes one), where the loopback
//! device's counters see this process's traffic and nothing else.

use std::net::UdpSocket;
use std::time::Duration;

use crate::compare;
use crate::mesh::{self, Mesh};
use crate::report::{count, Report, Table};

#[derive(Clone, Copy, Default)]
struct Kernel {
    packets: u64,
    bytes: u64,
}

fn read_u64(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn kernel() -> Kernel {
    Kernel {
        packets: read_u64("/sys/class/net/lo/statistics/tx_packets"),
        bytes: read_u64("/sys/class/net/lo/statistics/tx_bytes"),
    }
}

fn since(before: Kernel) -> Kernel {
    let after = kernel();
    Kernel {
        packets: after.packets - before.packets,
        bytes: after.bytes - before.bytes,
    }
}

/// Bytes the loopback device adds to each UDP datagram's payload (link, IP and UDP
/// headers), measured rather than assumed.
fn per_datagram_overhead() -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = socket.local_addr().expect("addr");
    let before = kernel();
    for _ in 0..100 {
        socket.send_to(&[0u8; 100], to).ok();
    }
    let k = since(before);
    (k.bytes / k.packets.max(1)).saturating_sub(100)
}

pub fn run(report: &mut Report) {
    let interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let alone = interfaces == ["lo"];
    let overhead = per_datagram_overhead();
    let mut t = Table::new(
        "Socket-edge counters against the kernel's loopback counters",
        &[
            "system",
            "datagrams (own count)",
            "datagrams (kernel)",
            "payload bytes (own count)",
            "payload bytes (kernel)",
            "difference",
        ],
    );

    let before = kernel();
    let m = Mesh::new(5, "xc-", |_| {});
    m.wait_formed(Duration::from_secs(30));
    for i in 0..1000 {
        m.nodes[i % 5].set(&format!("x/{i}"), i as i64).ok();
    }
    mesh::wait_for(Duration::from_secs(60), || m.all_hold(1000));
    for n in &m.nodes {
        n.stop();
    }
    let own = m.counters();
    let k = since(before);
    drop(m);
    let payload = k.bytes - overhead * k.packets;
    t.row(vec![
        "mesh-sync (5 nodes, 1,000 writes)".into(),
        count(own.datagrams_sent),
        count(k.packets),
        count(own.bytes_sent),
        count(payload),
        format!(
            "{} bytes; {} datagrams",
            payload as i64 - own.bytes_sent as i64,
            k.packets as i64 - own.datagrams_sent as i64
        ),
    ]);

    let before = kernel();
    let (datagrams, bytes) = compare::chitchat_sent(5, 200);
    let k = since(before);
    let payload = k.bytes - overhead * k.packets;
    t.row(vec![
        "chitchat (5 nodes × 200 keys)".into(),
        count(datagrams),
        count(k.packets),
        count(bytes),
        count(payload),
        format!(
            "{} bytes; {} datagrams",
            payload as i64 - bytes as i64,
            k.packets as i64 - datagrams as i64
        ),
    ]);
    t.note(format!(
        "Kernel: tx counters of the loopback device, less {overhead} bytes of IPv4 and UDP headers \
         per datagram (measured). {} mesh-sync's node runtime wakes its network thread through a \
         pipe, not the network, so any difference is traffic the core's counters missed.",
        if alone {
            "Run alone in a fresh network namespace, so nothing else touched these counters."
        } else {
            "NOT run in an isolated network namespace: other traffic on this machine is included."
        }
    ));
    report.add(t);
}
