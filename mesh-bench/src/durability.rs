//! Durability: write throughput with a data directory (batched and sync, with commit
//! latency), reload time and disk usage of a large store, and the bytes a restarted node
//! receives to catch up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mesh_core::{Config, Durability, Node};

use crate::mesh::{self, value_100};
use crate::report::{count, fmt, percentile, verdict, Report, Table};
use crate::throughput;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stored(id: &str, dir: Option<&Path>, durability: Durability) -> Config {
    let mut c = mesh::config(id);
    c.data_dir = dir.map(Path::to_owned);
    c.durability = durability;
    c
}

struct Run {
    writes_per_s: f64,
    commits: u64,
    mean_us: u64,
    max_us: u64,
}

/// `writers` threads write `total` 100-byte values to one started node.
fn write_run(dir: Option<&Path>, durability: Durability, writers: usize, total: u64) -> Run {
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let node = Node::new(stored("w", dir, durability)).expect("node");
    node.start().expect("start");
    let next = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..writers {
            let (node, next) = (&node, &next);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t as u64);
                let value = value_100(&mut rng);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    node.set(&format!("w/{i:08}"), value.as_str())
                        .expect("write");
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let storage = node.status().storage.unwrap_or_default();
    node.stop();
    Run {
        writes_per_s: total as f64 / secs,
        commits: storage.commits,
        mean_us: storage.commit_mean_us,
        max_us: storage.commit_max_us,
    }
}

fn throughput(report: &mut Report, smoke: bool) {
    let dir = scratch("throughput");
    let (fast, sync_total) = if smoke {
        (2_000, 200)
    } else {
        (200_000, 20_000)
    };
    let mut table = Table::new(
        "Durable writes on one node",
        &[
            "store",
            "writers",
            "writes",
            "writes/s",
            "vs memory",
            "commits",
            "commit mean",
            "commit max",
            "target",
        ],
    );
    let mut memory = [0.0f64; 2];
    for (label, durability, on_disk, writers, total) in [
        ("memory", Durability::Batched, false, 1, fast),
        ("memory", Durability::Batched, false, 8, fast),
        ("batched", Durability::Batched, true, 1, fast),
        ("batched", Durability::Batched, true, 8, fast),
        ("sync", Durability::Sync, true, 1, sync_total / 10),
        ("sync", Durability::Sync, true, 8, sync_total),
    ] {
        let run = write_run(on_disk.then_some(dir.as_path()), durability, writers, total);
        let slot = usize::from(writers == 8);
        if !on_disk {
            memory[slot] = run.writes_per_s;
        }
        let share = run.writes_per_s / memory[slot] * 100.0;
        let target = match (label, writers) {
            ("batched", _) => format!("≥50% of memory: {}", verdict(share >= 50.0)),
            ("sync", 8) => format!("≥5,000/s: {}", verdict(run.writes_per_s >= 5_000.0)),
            _ => String::new(),
        };
        table.row(vec![
            label.to_owned(),
            writers.to_string(),
            count(total),
            count(run.writes_per_s as u64),
            format!("{}%", fmt(share)),
            if on_disk {
                count(run.commits)
            } else {
                "-".to_owned()
            },
            if on_disk {
                format!("{} µs", count(run.mean_us))
            } else {
                "-".to_owned()
            },
            if on_disk {
                format!("{} µs", count(run.max_us))
            } else {
                "-".to_owned()
            },
            target,
        ]);
    }
    table.note(
        "One started node without peers, 100-byte values, keys `w/NNNNNNNN`; writes/s counts \
         acknowledged writes (sync: on disk; batched: the commit before its own on \
         disk or still within the 10 ms flush interval). A commit is one fjall write batch (journal append) with its fsync; sync writers waiting \
         together share one (group commit).",
    );
    report.add(table);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes of the files under `dir`: their lengths, and what the file system allocated
/// for them (fjall sizes a journal file ahead of use, and the part never written takes
/// no blocks).
fn dir_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .fold((0, 0), |(len, used), e| match e.metadata() {
            Ok(m) if m.is_dir() => {
                let (l, u) = dir_bytes(&e.path());
                (len + l, used + u)
            }
            Ok(m) => (len + m.len(), used + m.blocks() * 512),
            Err(_) => (len, used),
        })
}

/// Copies the directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn reload_and_catch_up(report: &mut Report, smoke: bool) {
    let keys: u64 = if smoke { 10_000 } else { 1_000_000 };
    const MISSED: u64 = 10;
    let dir_a = scratch("reload-a");
    let dir_b = scratch("reload-b");
    // Build the store: one node writes every key (batched), then stops.
    let build_start = Instant::now();
    let payload;
    let stop_secs;
    {
        let node = Node::new(stored("a", Some(&dir_a), Durability::Batched)).expect("node");
        // A value of its own per key: the store compresses, and one value repeated
        // would flatter its size.
        let mut rng = fastrand::Rng::with_seed(1);
        let mut bytes = 0u64;
        for i in 0..keys {
            let key = format!("key/{i:08}");
            let value = value_100(&mut rng);
            bytes += (key.len() + value.len()) as u64;
            node.set(&key, value.as_str()).expect("write");
        }
        payload = bytes;
        let stop_start = Instant::now();
        node.stop();
        stop_secs = stop_start.elapsed().as_secs_f64();
    }
    let build_secs = build_start.elapsed().as_secs_f64();
    let (file_len, disk) = dir_bytes(&dir_a);
    // B is A's state as of now: a node that went away holding everything.
    copy_dir(
        &dir_a.join(mesh_core::store::STORE_DIR),
        &dir_b.join(mesh_core::store::STORE_DIR),
    )
    .expect("copy the store");

    let reload_start = Instant::now();
    let a = Node::new(stored("a", Some(&dir_a), Durability::Batched)).expect("reload");
    let reload = reload_start.elapsed();
    assert_eq!(a.len() as u64, keys);
    let load_ms = a.status().storage.map_or(0, |s| s.load_ms);

    let mut table = Table::new(
        "Reload of a stored state",
        &[
            "keys",
            "payload",
            "file sizes",
            "on disk",
            "disk / payload",
            "reload",
            "of which store",
            "target",
        ],
    );
    let ratio = disk as f64 / payload as f64;
    table.row(vec![
        count(keys),
        format!("{} MB", fmt(payload as f64 / 1e6)),
        format!("{} MB", fmt(file_len as f64 / 1e6)),
        format!("{} MB", fmt(disk as f64 / 1e6)),
        fmt(ratio),
        format!("{} s", fmt(reload.as_secs_f64())),
        format!("{} s", fmt(load_ms as f64 / 1000.0)),
        format!(
            "< 3 s: {}; ≤ 2× payload: {}",
            verdict(reload.as_secs_f64() < 3.0),
            verdict(ratio <= 2.0)
        ),
    ]);
    table.note(format!(
        "Keys `key/NNNNNNNN` with 100-byte values, written by one node in batched mode in {} s \
         (stop included: {} s). Reload is `Node::new` on the directory: open, read every entry, \
         rebuild the replica; \"of which store\" is the fjall open and read alone. \"On disk\" \
         counts the blocks the file system allocated for every file of the store (tables, \
         journal, lock). Each key has its own random value.",
        fmt(build_secs),
        fmt(stop_secs)
    ));
    report.add(table);

    // Catch-up: A writes what B misses, then B comes back.
    a.start().expect("start");
    for i in 0..MISSED {
        a.set(&format!("missed/{i}"), i as i64).expect("write");
    }
    let b = Node::new(stored("b", Some(&dir_b), Durability::Batched)).expect("reload b");
    b.add_bootstrap_addr(a.local_addr());
    let start = Instant::now();
    b.start().expect("start b");
    let caught_up = mesh::wait_for(Duration::from_secs(120), || b.len() as u64 == keys + MISSED);
    let took = start.elapsed();
    let received = b.status().counters.bytes_received;
    let mut table = Table::new(
        "Restarted node catches up by delta",
        &[
            "stored keys",
            "missed writes",
            "bytes received",
            "caught up in",
            "target",
        ],
    );
    table.row(vec![
        count(keys),
        count(MISSED),
        count(received),
        if caught_up {
            format!("{} ms", fmt(took.as_secs_f64() * 1000.0))
        } else {
            "not within 120 s".to_owned()
        },
        format!("< 50 KB: {}", verdict(caught_up && received < 50_000)),
    ]);
    table.note(format!(
        "Two nodes start from the same stored state (a copy of the store above); one writes {MISSED} \
         keys, then the other joins it. Bytes received by the returning node, from its start until it \
         holds the {MISSED} writes: handshake, heartbeats, digests and the missed entries. Receiving \
         the state itself would be about {} MB.",
        fmt(payload as f64 / 1e6)
    ));
    report.add(table);
    b.stop();
    a.stop();
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

/// The issue's own baseline: one writer on a 5-node mesh, as fast as it can, in memory
/// against the writer's node with a data directory and against every node with one.
fn replicated(report: &mut Report, smoke: bool) {
    let dir = scratch("replicated");
    let run_for = if smoke {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let mut table = Table::new(
        "Durable writes replicated to 4 peers",
        &[
            "data_dir on",
            "writes/s",
            "vs memory",
            "lag p50 ms",
            "lag p99 ms",
            "drained",
            "target",
        ],
    );
    let mut memory = 0.0;
    for (label, which) in [
        ("no node (memory)", Stored::None),
        ("the writer's node", Stored::Writer),
        ("every node", Stored::All),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let step = throughput::step(None, run_for, |c| {
            let keep = match which {
                Stored::None => false,
                // The writer is the mesh's first node.
                Stored::Writer => c.node_id.ends_with("-0"),
                Stored::All => true,
            };
            if keep {
                c.data_dir = Some(dir.join(&c.node_id));
                c.durability = Durability::Batched;
            }
        });
        let rate = step.written as f64 / step.secs;
        if matches!(which, Stored::None) {
            memory = rate;
        }
        let share = rate / memory * 100.0;
        table.row(vec![
            label.to_owned(),
            count(rate as u64),
            format!("{}%", fmt(share)),
            fmt(percentile(&step.lag_sorted_ms, 50.0)),
            fmt(percentile(&step.lag_sorted_ms, 99.0)),
            if step.drain.is_some() { "yes" } else { "no" }.to_owned(),
            if matches!(which, Stored::None) {
                String::new()
            } else {
                format!("≥50% of memory: {}", verdict(share >= 50.0))
            },
        ]);
    }
    table.note(format!(
        "Each row: a fresh 5-node mesh, {} s of batched writes of new keys from one thread on the \
         first node, as in the sustained-writes scenario. All five nodes, their store threads \
         and the store's background threads share the machine's 2 cores, so \"every node\" \
         charges the writer for four other disks' work too.",
        run_for.as_secs_f64()
    ));
    report.add(table);
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Clone, Copy)]
enum Stored {
    None,
    Writer,
    All,
}

pub fn run(report: &mut Report, smoke: bool) {
    throughput(report, smoke);
    replicated(report, smoke);
    reload_and_catch_up(report, smoke);
}
