//! Durability: a node with a `data_dir` keeps its state across restarts and crashes,
//! catches up by delta, never brings back deleted keys after a long absence, never
//! reuses an origin or moves its clock back, and refuses a store it cannot trust.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesh_core::store::{Store, STORE_DIR};

mod support;
use mesh_core::{
    Config, Durability, Engine, Error, Node, NoncePrefix, Now, StorageErrorKind, Value,
};
use support::wait_until;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-durability-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(id: &str, dir: &Path, durability: Durability) -> Config {
    let mut c = support::node_config(id, "127.0.0.1");
    c.data_dir = Some(dir.to_owned());
    c.durability = durability;
    c
}

fn memory_config(id: &str) -> Config {
    let mut c = config(id, Path::new("/nonexistent"), Durability::Batched);
    c.data_dir = None;
    c
}

fn storage_kind(result: Result<Node, Error>) -> (StorageErrorKind, PathBuf, String) {
    match result {
        Err(Error::Storage { kind, path, reason }) => (kind, path, reason),
        Err(other) => panic!("expected a storage error, got {other}"),
        Ok(_) => panic!("expected a storage error, the node opened"),
    }
}

#[test]
fn restart_keeps_state_and_reads_work_before_start() {
    let dir = scratch("restart");
    for durability in [Durability::Batched, Durability::Sync] {
        let _ = std::fs::remove_dir_all(&dir);
        let node = Node::new(config("r1", &dir, durability)).unwrap();
        node.start().unwrap();
        node.set("temperature", 72.5).unwrap();
        node.set("config", Value::from_json(r#"{"mode": "eco"}"#).unwrap())
            .unwrap();
        node.set("gone", 1).unwrap();
        node.delete("gone").unwrap();
        let first_origin = node.status().hlc;
        node.stop();
        drop(node);

        // Never started: reads come straight from the disk.
        let node = Node::new(config("r1", &dir, durability)).unwrap();
        assert_eq!(
            node.get("temperature"),
            Some(Value::Float(72.5)),
            "{durability}"
        );
        assert_eq!(
            node.get("config"),
            Some(Value::from_json(r#"{"mode": "eco"}"#).unwrap())
        );
        assert_eq!(node.get("gone"), None, "a delete survives the restart");
        let status = node.status();
        assert_eq!(status.data_keys, 2);
        assert_eq!(status.tombstones, 1);
        assert!(status.hlc >= first_origin, "the clock starts at its floor");
        let storage = status.storage.expect("storage status");
        assert_eq!(storage.loaded_entries, 3);
        assert!(!storage.discarded_stale);
        assert_eq!(storage.durability, durability.as_str());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A delete whose tombstone was collected is remembered across a restart from the disk,
/// so an older value offered later still loses to it (see `collected`).
#[test]
fn a_collected_delete_is_remembered_across_a_restart() {
    let dir = scratch("collected");
    let fast = |c: &mut Config| {
        // Collected once the peer confirmed it, past the warm-up (20 heartbeats) and
        // two sync rounds.
        c.heartbeat_interval = Duration::from_millis(20);
        c.peer_timeout = Duration::from_millis(100);
        c.sync_interval = Duration::from_millis(50);
    };
    let mut c = config("c1", &dir, Durability::Batched);
    fast(&mut c);
    let mut peer_config = memory_config("c2");
    fast(&mut peer_config);
    let node = Node::new(c.clone()).unwrap();
    let peer = Node::new(peer_config).unwrap();
    node.add_bootstrap_addr(peer.local_addr());
    node.start().unwrap();
    peer.start().unwrap();
    node.set("k", 1).unwrap();
    node.delete("k").unwrap();
    wait_until("the tombstone's collection", || {
        let status = node.status();
        status.tombstones == 0 && status.collected_deletes == 1
    });
    node.stop();
    drop(node);
    let node = Node::new(c).unwrap();
    let status = node.status();
    assert_eq!((status.tombstones, status.collected_deletes), (0, 1));
    assert_eq!(node.get("k"), None);
    drop(node);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_data_dir_no_file_is_touched() {
    let node = Node::new(memory_config("m1")).unwrap();
    node.set("k", 1).unwrap();
    assert!(node.status().storage.is_none());
}

#[test]
fn every_run_gets_a_new_origin_above_the_last() {
    let dir = scratch("origins");
    let mut origins: Vec<u64> = Vec::new();
    for run in 0..3 {
        let node = Node::new(config("o1", &dir, Durability::Batched)).unwrap();
        node.set(&format!("run{run}"), run).unwrap();
        drop(node);
        // The run recorded its origin before its first write.
        let (_, snapshot, _) = Store::open(&dir, now_ms(), Duration::from_secs(3600)).unwrap();
        assert!(
            origins
                .last()
                .is_none_or(|&last| snapshot.incarnation() > last),
            "run {run}: origin {} after {origins:?}",
            snapshot.incarnation()
        );
        origins.push(snapshot.incarnation());
        assert_eq!(snapshot.len(), run as usize + 1);
    }
    // The store itself enforces it even when the wall clock goes back: a "fresh"
    // incarnation from an earlier time is pushed above the recorded one.
    let (mut store, snapshot, _) = Store::open(&dir, now_ms(), Duration::from_secs(3600)).unwrap();
    let last = snapshot.incarnation();
    assert!(last > 0);
    let next = snapshot.next_incarnation(last - 1_000_000);
    assert!(next > last, "{next} must be above {last}");
    store.begin_run(next, now_ms()).unwrap();
    drop(store);
    let (_, snapshot, _) = Store::open(&dir, now_ms(), Duration::from_secs(3600)).unwrap();
    assert_eq!(snapshot.incarnation(), next);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn the_clock_never_goes_back_across_a_restart() {
    // Sans-IO, with chosen times: the first run's clock is 30 s ahead of the second
    // run's wall clock (a remote timestamp it observed, or a clock stepped back).
    let dir = scratch("hlc");
    let wall = now_ms();
    let grace = Duration::from_secs(3600);
    let config = config("h1", &dir, Durability::Batched);
    let (mut store, snapshot, _) = Store::open(&dir, wall, grace).unwrap();
    let first = snapshot.next_incarnation(wall << 16);
    store.begin_run(first, wall).unwrap();
    let ahead = Now {
        mono_us: 0,
        wall_ms: wall + 30_000,
    };
    let mut engine = Engine::new(config.clone(), first, 1, NoncePrefix([1; 16]), ahead);
    engine.restore(snapshot);
    engine.record_store_changes();
    engine.set(ahead, "k", Value::Int(1)).unwrap();
    let issued = engine.status().hlc;
    store
        .commit(&engine.take_store_batch(ahead).unwrap())
        .unwrap();
    drop((engine, store));

    let back = Now {
        mono_us: 0,
        wall_ms: wall,
    };
    let (mut store, snapshot, _) = Store::open(&dir, wall, grace).unwrap();
    assert!(snapshot.hlc() >= issued);
    let second = snapshot.next_incarnation(wall << 16);
    assert!(second > first);
    store.begin_run(second, wall).unwrap();
    let mut engine = Engine::new(config, second, 2, NoncePrefix([2; 16]), back);
    engine.restore(snapshot);
    assert!(
        engine.status().hlc >= issued,
        "restored clock below its floor"
    );
    engine.set(back, "k", Value::Int(2)).unwrap();
    assert!(
        engine.status().hlc > issued,
        "a write after the restart must be stamped above every earlier one"
    );
    assert_eq!(engine.get("k"), Some(&Value::Int(2)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_node_away_longer_than_the_grace_discards_its_state() {
    let dir = scratch("grace");
    let mut c = config("g1", &dir, Durability::Sync);
    c.tombstone_grace = Duration::from_millis(300);
    let node = Node::new(c.clone()).unwrap();
    node.set("old", 1).unwrap();
    drop(node);

    // Back within the grace: kept.
    let node = Node::new(c.clone()).unwrap();
    assert_eq!(node.get("old"), Some(Value::Int(1)));
    drop(node);

    std::thread::sleep(Duration::from_millis(600));
    let node = Node::new(c.clone()).unwrap();
    assert_eq!(node.get("old"), None, "state older than the grace must go");
    let storage = node.status().storage.unwrap();
    assert!(storage.discarded_stale);
    assert_eq!(storage.loaded_entries, 0);
    // The discard is durable and the store stays usable.
    node.set("new", 2).unwrap();
    drop(node);
    let node = Node::new(c).unwrap();
    assert_eq!(node.get("old"), None);
    assert_eq!(node.get("new"), Some(Value::Int(2)));
    assert!(!node.status().storage.unwrap().discarded_stale);
    drop(node);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let dir = scratch("lock");
    let first = Node::new(config("l1", &dir, Durability::Batched)).unwrap();
    first.set("k", 1).unwrap();
    let (kind, path, reason) = storage_kind(Node::new(config("l2", &dir, Durability::Batched)));
    assert_eq!(kind, StorageErrorKind::Locked, "{reason}");
    assert_eq!(path, dir.join(STORE_DIR));
    // The first node is unharmed, and the directory is free once it stops.
    assert_eq!(first.get("k"), Some(Value::Int(1)));
    first.stop();
    drop(first);
    let again = Node::new(config("l2", &dir, Durability::Batched)).unwrap();
    assert_eq!(again.get("k"), Some(Value::Int(1)));
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store of `n` keys whose values carry a recognisable marker, closed cleanly.
fn written_store(name: &str, n: usize) -> PathBuf {
    let dir = scratch(name);
    let node = Node::new(config("d1", &dir, Durability::Batched)).unwrap();
    for i in 0..n {
        node.set(
            &format!("key{i:05}"),
            format!("MARKER-{i:05}-{}", "x".repeat(60)),
        )
        .unwrap();
    }
    drop(node);
    dir
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// The table files of a store closed cleanly (its journal written out into them).
fn table_files(dir: &Path) -> Vec<PathBuf> {
    let segments = dir.join(STORE_DIR).join("partitions/entries/segments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no table file in {}", segments.display());
    files
}

/// Every file under `dir`, with its bytes.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), file_bytes(&path)));
            }
        }
    }
    out.sort();
    out
}

/// A refused store is left as it is: the same files with the same bytes.
fn assert_unchanged(dir: &Path, before: &[(PathBuf, Vec<u8>)]) {
    let after = all_bytes(dir);
    let names = |files: &[(PathBuf, Vec<u8>)]| -> Vec<PathBuf> {
        files.iter().map(|(p, _)| p.clone()).collect()
    };
    assert_eq!(
        names(&after),
        names(before),
        "a damaged store is left as it is"
    );
    // fjall sizes a journal file ahead of use and trims the zeros never written at
    // open: that is the only change allowed.
    let written = |b: &[u8]| b.len() - b.iter().rev().take_while(|&&x| x == 0).count();
    for ((path, now), (_, then)) in after.iter().zip(before) {
        let same = if path.parent().is_some_and(|p| p.ends_with("journals")) {
            now[..written(now)] == then[..written(then)]
        } else {
            now == then
        };
        assert!(
            same,
            "{} changed: a damaged store is left as it is",
            path.display()
        );
    }
}

#[test]
fn a_truncated_store_is_refused_and_left_in_place() {
    let dir = written_store("truncated", 2000);
    let file = table_files(&dir)[0].clone();
    let len = std::fs::metadata(&file).unwrap().len();
    for cut in [len / 2, 1000, 0] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let before = all_bytes(&dir);
        let (kind, path, reason) = storage_kind(Node::new(config("d1", &dir, Durability::Batched)));
        assert_eq!(kind, StorageErrorKind::Corrupted, "cut at {cut}: {reason}");
        assert_eq!(path, dir.join(STORE_DIR));
        assert_unchanged(&dir, &before);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_garbled_store_is_refused_and_left_in_place() {
    // Garbage over the start, the middle and the end of the table file: its first
    // block's header, compressed entries and the trailer's closing magic bytes.
    // Positions are taken from each store's own table file: its length varies from
    // one write to the next, and 16 bytes before another file's end may be padding.
    type Position = fn(u64) -> u64;
    let positions: [Position; 4] = [|_| 0, |len| len / 3, |len| len / 2, |len| len - 16];
    for position in positions {
        let dir = written_store("garbled", 2000);
        let file = table_files(&dir)[0].clone();
        let len = std::fs::metadata(&file).unwrap().len();
        let at = position(len);
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[0xa5; 16]).unwrap();
        drop(f);
        let before = all_bytes(&dir);
        let opened = Node::new(config("d1", &dir, Durability::Batched));
        assert!(opened.is_err(), "garbled at {at} of {len}: the node opened");
        let (kind, path, reason) = storage_kind(opened);
        assert_eq!(
            kind,
            StorageErrorKind::Corrupted,
            "garbled at {at}: {reason}"
        );
        assert_eq!(path, dir.join(STORE_DIR));
        assert_unchanged(&dir, &before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_garbled_journal_is_refused_and_left_in_place() {
    if let Some(dir) = std::env::var_os("MESH_JOURNAL_CHILD") {
        let node = Node::new(config("child", Path::new(&dir), Durability::Sync)).unwrap();
        for i in 0..200 {
            node.set(
                &format!("k{i:05}"),
                format!("child-value-{i:05}-{}", "y".repeat(40)),
            )
            .unwrap();
        }
        println!("acked all");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    // A store whose last run was killed: its writes are in the journal only.
    let dir = scratch("garbled-journal");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_garbled_journal_is_refused_and_left_in_place",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MESH_JOURNAL_CHILD", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("acked all"))),
        "the child acknowledged its writes"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let journals = dir.join(STORE_DIR).join("journals");
    let journal = std::fs::read_dir(&journals)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let bytes = file_bytes(&journal);
    let marker = b"child-value-00100";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the value is in the journal");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.seek(SeekFrom::Start(at as u64 + 12)).unwrap();
    f.write_all(b"99999").unwrap();
    drop(f);
    let before = all_bytes(&dir);
    let (kind, path, reason) = storage_kind(Node::new(config("d1", &dir, Durability::Sync)));
    assert_eq!(kind, StorageErrorKind::Corrupted, "{reason}");
    assert_eq!(path, dir.join(STORE_DIR));
    assert_unchanged(&dir, &before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_data_dir_the_process_may_not_use_is_a_clear_permission_error() {
    let dir = written_store("permission", 10);
    let inner = dir.join("private");
    std::fs::create_dir_all(&inner).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store_dir = inner.join("store");
    let attempt = {
        let store_dir = store_dir.clone();
        move || storage_kind(Node::new(config("p1", &store_dir, Durability::Batched)))
    };
    let (kind, path, reason) = if rustix::process::geteuid().is_root() {
        // Root ignores permission bits: try as nobody, on a thread of its own (the
        // raw set-uid call changes only the calling thread's credentials).
        std::thread::spawn(move || {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
            attempt()
        })
        .join()
        .unwrap()
    } else {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o000)).unwrap();
        let outcome = attempt();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        outcome
    };
    assert_eq!(kind, StorageErrorKind::Permission, "{reason}");
    assert!(path.starts_with(&store_dir), "{}", path.display());
    assert!(reason.to_lowercase().contains("permission"), "{reason}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_restarted_node_catches_up_by_delta() {
    const KEYS: usize = 3000;
    const MISSED: usize = 10;
    let dir = scratch("delta");
    let a = Node::new(memory_config("a")).unwrap();
    a.start().unwrap();
    // Values of their own, so compression cannot make the whole state small.
    let mut rng = fastrand::Rng::with_seed(4);
    for i in 0..KEYS {
        let value: String = (0..100).map(|_| rng.alphanumeric()).collect();
        a.set(&format!("key{i:06}"), value).unwrap();
    }
    let b = Node::new(config("b", &dir, Durability::Batched)).unwrap();
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    b.start().unwrap();
    wait_until("b to hold the state", || b.len() == KEYS);
    let full_bytes = b.status().counters.bytes_received;
    b.stop();
    drop(b);

    for i in 0..MISSED {
        a.set(&format!("missed{i}"), i as i64).unwrap();
    }
    let b = Node::new(config("b", &dir, Durability::Batched)).unwrap();
    assert_eq!(b.len(), KEYS, "reloaded before start");
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    b.start().unwrap();
    wait_until("b to catch up", || b.len() == KEYS + MISSED);
    let delta_bytes = b.status().counters.bytes_received;
    eprintln!("full state {full_bytes} B received, catch-up {delta_bytes} B");
    assert!(full_bytes > 200_000, "the state is large: {full_bytes}");
    assert!(
        delta_bytes < 20_000,
        "catching up on {MISSED} writes took {delta_bytes} bytes (the full state took {full_bytes})"
    );
    b.stop();
    a.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Child side of the kill test: writes in sync mode, printing each acknowledged index.
fn child_writer(dir: &Path) {
    let node = Node::new(config("child", dir, Durability::Sync)).unwrap();
    let stdout = std::io::stdout();
    let mut i = node.len();
    loop {
        node.set(&format!("k{i:06}"), i as i64).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "{i}").unwrap();
        out.flush().unwrap();
        i += 1;
    }
}

#[test]
fn sync_writes_survive_kill_9() {
    if let Some(dir) = std::env::var_os("MESH_DURABILITY_CHILD") {
        return child_writer(Path::new(&dir));
    }
    let dir = scratch("kill");
    let mut acknowledged = 0usize;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "sync_writes_survive_kill_9",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MESH_DURABILITY_CHILD", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 50 + round * 37;
        let mut acked_now = 0;
        while acked_now < target {
            let line = lines.next().expect("child output").unwrap();
            if let Ok(i) = line.trim().parse::<usize>() {
                acknowledged = acknowledged.max(i + 1);
                acked_now += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL, mid-write
        child.wait().unwrap();
        let node =
            Node::new(config("check", &dir, Durability::Sync)).expect("store opens after kill -9");
        for i in 0..acknowledged {
            assert_eq!(
                node.get(&format!("k{i:06}")),
                Some(Value::Int(i as i64)),
                "acknowledged write {i} lost (round {round})"
            );
        }
        drop(node);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_refuses_writes_but_the_node_serves_and_replicates() {
    let mount = scratch("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mount)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        let _ = std::fs::remove_dir_all(&mount);
        return;
    }
    let outcome = std::panic::catch_unwind(|| full_disk_scenario(&mount));
    let _ = Command::new("umount").arg(&mount).status();
    let _ = std::fs::remove_dir_all(&mount);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn full_disk_scenario(mount: &Path) {
    let dir = mount.join("node");
    let a = Node::new(config("full-a", &dir, Durability::Sync)).unwrap();
    let b = Node::new(memory_config("full-b")).unwrap();
    b.add_bootstrap_peer("127.0.0.1", a.port()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    a.set("before", 1).unwrap();
    // Fill what is left of the disk.
    let filler_path = mount.join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while filler
        .write_all(&chunk)
        .and_then(|()| filler.sync_all())
        .is_ok()
    {}
    drop(filler);

    let big = "x".repeat(256 * 1024);
    let mut refused = None;
    for i in 0..20 {
        if let Err(e) = a.set(&format!("big{i}"), big.as_str()) {
            refused = Some(e);
            break;
        }
    }
    match refused.expect("a write must fail on a full disk") {
        Error::Storage { kind, path, .. } => {
            assert_eq!(kind, StorageErrorKind::Full);
            assert!(path.starts_with(&dir));
        }
        other => panic!("expected a storage error, got {other}"),
    }
    // Refused up front now, with the same clear error; reads and replication go on.
    assert!(matches!(
        a.set("refused", 1),
        Err(Error::Storage {
            kind: StorageErrorKind::Full,
            ..
        })
    ));
    assert_eq!(a.get("refused"), None, "a refused write changes nothing");
    assert_eq!(a.get("before"), Some(Value::Int(1)));
    assert!(a.status().storage.unwrap().error.is_some());
    b.set("from-b", 2).unwrap();
    wait_until("b's write to reach a", || {
        a.get("from-b") == Some(Value::Int(2))
    });

    // Space again: the retry succeeds and writes are accepted.
    std::fs::remove_file(&filler_path).unwrap();
    wait_until("the store to accept commits again", || {
        a.status().storage.unwrap().error.is_none()
    });
    a.set("after", 3).unwrap();
    a.stop();
    b.stop();
    drop(a);
    let a = Node::new(config("full-a", &dir, Durability::Sync)).unwrap();
    assert_eq!(a.get("before"), Some(Value::Int(1)));
    assert_eq!(
        a.get("from-b"),
        Some(Value::Int(2)),
        "merged while the disk was full"
    );
    assert_eq!(a.get("after"), Some(Value::Int(3)));
}
