//! Durability: the replica on disk, so a node restarts with its state, offline, and
//! catches up by delta.
//!
//! The engine stays sans-IO. While a store is attached, the replica notes which keys
//! changed (a `StoreLog`); the driver drains them with
//! [`crate::Engine::take_store_batch`] as a [`StoreBatch`] (the current entry of every
//! changed key, or its removal once a tombstone is collected, plus the version vector,
//! the clock's high-water mark and the wall time) and [`Store::commit`]s the batch as one
//! atomic write batch. A batch is a consistent cut of the replica: the version vector on
//! disk never accounts for a write whose entry (or superseder) is not on disk with it.
//!
//! [`Store::open`] reads everything back as a [`Snapshot`] that
//! [`crate::Engine::restore`] installs before the engine starts, so reads work at once.
//!
//! The store is a fjall keyspace (a log-structured merge tree: a checksummed journal,
//! then sorted, LZ4-compressed table files) in the directory `mesh.fjall`, with one
//! partition, `entries`: each key to its encoded entry, each collected delete still
//! remembered (see `collected`) under its key after the byte 0xFE, and the run record
//! under the key 0xFF `run` (neither byte occurs in UTF-8, so no replica key can name
//! them). One partition, so the journal is freed as soon as that partition's memory
//! table is written out. Each stored record also carries a CRC-32 of its key and value,
//! so a garbled record is refused at load rather than read as a wrong key or value.
//! Stores of formats 1 and 2 (a redb file, `mesh.redb`) are migrated at open.

// The store does I/O for the runtime, and times its load like the runtime would.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, StorageErrorKind};
use crate::replica::Entry;
use crate::version::OriginId;

mod legacy;
mod lock;
mod record;

use lock::DirLock;
use record::{decode, encode_entry, encode_into, Meta, Record};

/// The store's directory inside a node's data directory.
pub const STORE_DIR: &str = "mesh.fjall";

/// Version of the store's layout; a store written by a later layout is refused.
/// Format 2 added the expiry of entries written with a TTL. Format 3 moved the store
/// from a redb file (`mesh.redb`) to a fjall keyspace and made each record's CRC-32
/// cover its key; format 1 and 2 stores are migrated at open (see [`legacy`]). Format 4
/// added the collected deletes; a format 3 store has none, and is read as it is.
const FORMAT: u32 = 4;
/// The earliest format this build reads without migrating it.
const FIRST_READ_FORMAT: u32 = 3;

const ENTRIES: &str = "entries";
/// The run record's key: 0xFF never occurs in UTF-8, so no replica key equals it.
const META_KEY: &[u8] = b"\xffrun";
/// The byte before a collected delete's key: 0xFE never occurs in UTF-8 either.
const COLLECTED_PREFIX: u8 = 0xFE;

/// Longest a running node leaves its last-alive time on disk unrefreshed: an idle node
/// must not look "away for longer than the tombstone grace" after a restart.
const MAX_TOUCH_MS: u64 = 60_000;

/// When a write is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `set` and `delete` return once the write is on disk (fsync'd). Concurrent writers
    /// share one commit (group commit).
    Sync,
    /// Writes are committed in the background within `flush_interval`; a crash may lose
    /// the last interval's writes (those peers received are recovered from them).
    /// `stop` makes everything durable.
    #[default]
    Batched,
}

impl Durability {
    /// `"sync"` or `"batched"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Batched => "batched",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(Durability::Sync),
            "batched" => Ok(Durability::Batched),
            other => Err(format!(
                "durability is \"sync\" or \"batched\", not {other:?}"
            )),
        }
    }
}

/// A version vector as stored: each origin and its accounted ranges.
pub(crate) type StoredVv = Vec<(OriginId, Vec<(u64, u64)>)>;

/// What the replica changed since the last batch (kept by the replica while a store is
/// attached).
#[derive(Debug, Default)]
pub(crate) struct StoreLog {
    keys: std::collections::HashSet<Arc<str>>,
    vv_changed: bool,
    /// Batches taken so far.
    pub(crate) taken: u64,
    /// Clock and wall time written by the last batch.
    last_hlc: u64,
    last_wall_ms: u64,
}

impl StoreLog {
    pub(crate) fn touch(&mut self, key: &Arc<str>) {
        if !self.keys.contains(key) {
            self.keys.insert(Arc::clone(key));
        }
    }

    pub(crate) fn touch_vv(&mut self) {
        self.vv_changed = true;
    }

    pub(crate) fn is_dirty(&self) -> bool {
        !self.keys.is_empty() || self.vv_changed
    }

    /// Whether a batch is due: something changed, or the clock moved, or the last-alive
    /// time on disk is older than `touch_ms`.
    pub(crate) fn due(&self, hlc: u64, wall_ms: u64, touch_ms: u64) -> bool {
        self.is_dirty()
            || hlc != self.last_hlc
            || wall_ms.saturating_sub(self.last_wall_ms) >= touch_ms
    }

    /// Empties the log; returns the changed keys and whether the vector changed.
    pub(crate) fn take(&mut self, hlc: u64, wall_ms: u64) -> (Vec<Arc<str>>, bool) {
        self.taken += 1;
        self.last_hlc = hlc;
        self.last_wall_ms = wall_ms;
        let keys = self.keys.drain().collect();
        (keys, std::mem::take(&mut self.vv_changed))
    }

    /// How often an idle node refreshes its last-alive time on disk.
    pub(crate) fn touch_interval_ms(grace: Duration) -> u64 {
        ((grace.as_millis() as u64) / 16).clamp(1, MAX_TOUCH_MS)
    }
}

/// Changes to write in one transaction: see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreBatch {
    /// Changed keys, each once: `Some` puts the entry (tombstones included), `None`
    /// removes the key (its tombstone was collected). A list rather than a map: it is
    /// built under the engine lock, and pushing is the cheapest way to build it.
    pub(crate) changes: Vec<(Arc<str>, Option<Entry>)>,
    /// Keys whose collected delete was remembered (`Some`) or forgotten (`None`), each
    /// once (see `collected`).
    pub(crate) collected: Vec<(Arc<str>, Option<Entry>)>,
    /// The whole version vector, when it changed.
    pub(crate) vv: Option<StoredVv>,
    /// The clock's high-water mark.
    pub(crate) hlc: u64,
    /// Wall time of the batch, milliseconds since the Unix epoch.
    pub(crate) wall_ms: u64,
}

impl StoreBatch {
    /// Keys put or removed, and collected deletes remembered or forgotten.
    pub fn len(&self) -> usize {
        self.changes.len() + self.collected.len()
    }

    /// Whether no key changed (the batch may still carry the vector, clock and time).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.collected.is_empty()
    }

    /// Folds a later batch into this one (a failed commit is retried with what came
    /// after it).
    pub fn absorb(&mut self, later: StoreBatch) {
        absorb_changes(&mut self.changes, later.changes);
        absorb_changes(&mut self.collected, later.collected);
        if later.vv.is_some() {
            self.vv = later.vv;
        }
        self.hlc = self.hlc.max(later.hlc);
        self.wall_ms = self.wall_ms.max(later.wall_ms);
    }
}

/// `later` after `changes`, each key once, as `later` left it.
fn absorb_changes(
    changes: &mut Vec<(Arc<str>, Option<Entry>)>,
    later: Vec<(Arc<str>, Option<Entry>)>,
) {
    changes.extend(later);
    let mut last = std::collections::HashMap::with_capacity(changes.len());
    for (i, (key, _)) in changes.iter().enumerate() {
        last.insert(Arc::clone(key), i);
    }
    let mut i = 0;
    changes.retain(|(key, _)| {
        i += 1;
        last[key] == i - 1
    });
}

/// A replica as loaded from disk.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub(crate) entries: Vec<(String, Entry)>,
    /// The collected deletes remembered when the store was last written.
    pub(crate) collected: Vec<(String, Entry)>,
    pub(crate) vv: StoredVv,
    /// The clock's high-water mark: the restored clock starts at or above it.
    pub(crate) hlc: u64,
    /// The last incarnation that ran on this store; the next must be above it.
    pub(crate) incarnation: u64,
    /// When the store was last written (ms since the epoch; 0 if never).
    pub(crate) wall_ms: u64,
}

impl Snapshot {
    /// Entries loaded (tombstones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.vv.is_empty()
    }

    /// The clock's high-water mark on disk.
    pub fn hlc(&self) -> u64 {
        self.hlc
    }

    /// The last incarnation recorded on disk (0 if none).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// An incarnation for a new run: `fresh` unless the clock went back since the last
    /// run, then one above the last, so no two runs on this store share an origin.
    pub fn next_incarnation(&self, fresh: u64) -> u64 {
        fresh.max(self.incarnation + 1).max(1)
    }
}

/// How [`Store::open`] found the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpenReport {
    /// Entries loaded (tombstones included).
    pub loaded_entries: usize,
    /// The stored state was older than `tombstone_grace` and was discarded: the node
    /// rebuilds from its peers rather than risk bringing deleted keys back.
    pub discarded_stale: bool,
    /// Milliseconds the open and load took.
    pub load_ms: u64,
}

/// The store's state, in [`crate::Status::storage`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// The store's file.
    pub path: String,
    /// `"sync"` or `"batched"`.
    pub durability: String,
    /// Entries loaded at open (tombstones included).
    pub loaded_entries: usize,
    /// Milliseconds the open and load took.
    pub load_ms: u64,
    /// Whether the stored state was discarded at open, being older than
    /// `tombstone_grace` (the node rebuilt from its peers).
    pub discarded_stale: bool,
    /// Transactions committed since open.
    pub commits: u64,
    /// Keys written or removed since open.
    pub keys_written: u64,
    /// Commits that failed (each is retried with what followed it).
    pub failed_commits: u64,
    /// Mean commit latency (fsync included), microseconds.
    pub commit_mean_us: u64,
    /// Slowest commit, microseconds.
    pub commit_max_us: u64,
    /// Changes waiting to be committed.
    pub pending: bool,
    /// Why the last commit failed, while writes are refused; `None` when healthy.
    pub error: Option<String>,
}

/// An open fjall keyspace and its partition.
struct Db {
    keyspace: fjall::Keyspace,
    entries: fjall::PartitionHandle,
}

/// The node's store: a fjall keyspace in its data directory, opened exclusively.
pub struct Store {
    /// `None` after a failed commit: fjall refuses everything after a failed journal
    /// write, so the next commit reopens the keyspace (which recovers the last committed
    /// state).
    db: Option<Db>,
    path: PathBuf,
    meta: Meta,
    /// Held while the store is open: one node per data directory.
    _lock: DirLock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and loads it. A store last written
    /// more than `grace` before `now_wall_ms` is emptied (its entries and version vector;
    /// the clock floor and the last incarnation are kept). A format 1 or 2 store
    /// (`mesh.redb`) is migrated. Fails with [`Error::Storage`] if another node has the
    /// directory open, the store is damaged, or it cannot be read or written; a damaged
    /// store is left as it is.
    pub fn open(
        dir: &Path,
        now_wall_ms: u64,
        grace: Duration,
    ) -> Result<(Store, Snapshot, OpenReport), Error> {
        let started = std::time::Instant::now();
        let path = dir.join(STORE_DIR);
        std::fs::create_dir_all(dir).map_err(|e| io_error(&path, "cannot create", e))?;
        let lock = DirLock::acquire(dir, &path)?;
        let mut store = Store {
            db: Some(open_db(&path)?),
            path,
            meta: Meta {
                format: FORMAT,
                ..Meta::default()
            },
            _lock: lock,
        };
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.load()));
        let mut snapshot = match loaded {
            Ok(result) => result?,
            Err(_) => return Err(damaged(&store.path, "reading it failed")),
        };
        let legacy = dir.join(legacy::FILE);
        if legacy.exists() {
            if snapshot.wall_ms == 0 {
                snapshot = store.migrate(&legacy)?;
            } else {
                // A migration that stopped after its commit: the old file is a leftover.
                remove_migrated(&legacy);
            }
        }
        let mut report = OpenReport::default();
        let age_ms = now_wall_ms.saturating_sub(snapshot.wall_ms);
        if snapshot.wall_ms > 0 && age_ms > grace.as_millis() as u64 {
            log::warn!(
                "{}: last written {} s ago, longer than the tombstone grace ({} s): discarding \
                 the stored state and rebuilding from peers, so no deleted key comes back",
                store.path.display(),
                age_ms / 1000,
                grace.as_secs()
            );
            store.discard(&snapshot)?;
            snapshot.entries.clear();
            snapshot.collected.clear();
            snapshot.vv.clear();
            report.discarded_stale = true;
        }
        report.loaded_entries = snapshot.entries.len();
        report.load_ms = started.elapsed().as_millis() as u64;
        Ok((store, snapshot, report))
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&mut self) -> Result<&Db, Error> {
        if self.db.is_none() {
            self.db = Some(open_db(&self.path)?);
        }
        Ok(self.db.as_ref().expect("just opened"))
    }

    fn load(&mut self) -> Result<Snapshot, Error> {
        let path = self.path.clone();
        let err = |e: fjall::Error| open_error(&path, e);
        let db = self.db()?;
        let mut meta = None;
        let mut entries = Vec::with_capacity(db.entries.approximate_len());
        let mut collected = Vec::new();
        for item in db.entries.iter() {
            let (key, bytes) = item.map_err(err)?;
            if &*key == META_KEY {
                meta = Some(decode::<Meta>(&path, META_KEY, &bytes, "run record")?);
                continue;
            }
            let record = decode::<Record>(&path, &key, &bytes, "entry")?;
            let (list, name) = match key.split_first() {
                Some((&COLLECTED_PREFIX, name)) => (&mut collected, name),
                _ => (&mut entries, &key[..]),
            };
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| damaged(&path, "a key that is not UTF-8"))?;
            list.push((name, record.into_entry()));
        }
        if let Some(mut meta) = meta {
            if !(FIRST_READ_FORMAT..=FORMAT).contains(&meta.format) {
                return Err(storage_error(
                    &path,
                    StorageErrorKind::Corrupted,
                    format!(
                        "written in store format {}, this build reads formats \
                         {FIRST_READ_FORMAT} to {FORMAT} (and migrates formats 1 and 2 from {})",
                        meta.format,
                        legacy::FILE
                    ),
                ));
            }
            // Read as it is: the next commit writes the current format.
            meta.format = FORMAT;
            self.meta = meta;
        }
        if !(entries.is_empty() && collected.is_empty()) && self.meta.wall_ms == 0 {
            return Err(damaged(&path, "entries without a run record"));
        }
        if collected.iter().any(|(_, e)| e.value.is_some()) {
            return Err(damaged(&path, "a collected delete with a value"));
        }
        Ok(Snapshot {
            entries,
            collected,
            vv: self.meta.vv.clone(),
            hlc: self.meta.hlc,
            incarnation: self.meta.incarnation,
            wall_ms: self.meta.wall_ms,
        })
    }

    /// Copies a format 1 or 2 store into this (empty) one in one durable batch, then
    /// removes the old file. A crash in between leaves the old file, which the next open
    /// migrates again (nothing was committed) or removes (the batch was).
    fn migrate(&mut self, legacy: &Path) -> Result<Snapshot, Error> {
        let (meta, entries) = legacy::read(legacy)?;
        let Some(mut meta) = meta else {
            if entries.is_empty() {
                // Created and never committed: nothing to keep.
                remove_migrated(legacy);
                return Ok(Snapshot::default());
            }
            return Err(damaged(legacy, "entries without a run record"));
        };
        meta.format = FORMAT;
        let batch = StoreBatch {
            changes: entries
                .iter()
                .map(|(key, entry)| (Arc::from(key.as_str()), Some(entry.clone())))
                .collect(),
            collected: Vec::new(),
            vv: Some(meta.vv.clone()),
            hlc: meta.hlc,
            wall_ms: meta.wall_ms,
        };
        self.meta = meta;
        self.commit(&batch)?;
        log::info!(
            "{}: migrated {} entries from {} (store format {FORMAT})",
            self.path.display(),
            entries.len(),
            legacy.display()
        );
        remove_migrated(legacy);
        Ok(Snapshot {
            entries,
            collected: Vec::new(),
            vv: self.meta.vv.clone(),
            hlc: self.meta.hlc,
            incarnation: self.meta.incarnation,
            wall_ms: self.meta.wall_ms,
        })
    }

    /// Removes every entry and the vector, in one durable batch.
    fn discard(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut meta = self.meta.clone();
        meta.vv.clear();
        let removed = |list: &[(String, Entry)]| -> Vec<(Arc<str>, Option<Entry>)> {
            list.iter()
                .map(|(key, _)| (Arc::from(key.as_str()), None))
                .collect()
        };
        self.write(
            &meta,
            &removed(&snapshot.entries),
            &removed(&snapshot.collected),
        )?;
        self.meta = meta;
        Ok(())
    }

    /// Records the incarnation of the run starting now, durably, before any write of it
    /// exists.
    pub fn begin_run(&mut self, incarnation: u64, wall_ms: u64) -> Result<(), Error> {
        let mut meta = self.meta.clone();
        meta.incarnation = incarnation;
        meta.wall_ms = meta.wall_ms.max(wall_ms);
        self.write(&meta, &[], &[])?;
        self.meta = meta;
        Ok(())
    }

    /// Writes `batch` atomically, fsync'd before it returns. After a failure the store
    /// is as before the call, and the next commit may be tried.
    pub fn commit(&mut self, batch: &StoreBatch) -> Result<(), Error> {
        let mut meta = self.meta.clone();
        if let Some(vv) = &batch.vv {
            meta.vv = vv.clone();
        }
        meta.hlc = meta.hlc.max(batch.hlc);
        meta.wall_ms = meta.wall_ms.max(batch.wall_ms);
        self.write(&meta, &batch.changes, &batch.collected)?;
        self.meta = meta;
        Ok(())
    }

    /// One atomic, fsync'd write batch: `changes`, the `collected` deletes and the run
    /// record `meta`.
    fn write(
        &mut self,
        meta: &Meta,
        changes: &[(Arc<str>, Option<Entry>)],
        collected: &[(Arc<str>, Option<Entry>)],
    ) -> Result<(), Error> {
        let path = self.path.clone();
        let db = self.db()?;
        let mut batch = db
            .keyspace
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        let mut buf = Vec::new();
        let mut put = |key: &[u8], change: &Option<Entry>| match change {
            Some(entry) => {
                buf.clear();
                encode_entry(&mut buf, key, entry);
                batch.insert(&db.entries, key, buf.as_slice());
            }
            None => batch.remove(&db.entries, key),
        };
        for (key, change) in changes {
            put(key.as_bytes(), change);
        }
        let mut name = Vec::new();
        for (key, change) in collected {
            name.clear();
            name.push(COLLECTED_PREFIX);
            name.extend_from_slice(key.as_bytes());
            put(&name, change);
        }
        buf.clear();
        encode_into(&mut buf, META_KEY, meta);
        batch.insert(&db.entries, META_KEY, buf.as_slice());
        let result = batch.commit().map_err(|e| fjall_error(&path, e));
        if result.is_err() {
            self.db = None;
        }
        result
    }
}

impl Drop for Store {
    /// Writes what the journal holds into table files, so the next open reads compact,
    /// compressed tables instead of replaying the journal. A failure here loses nothing:
    /// the journal stays and is replayed.
    fn drop(&mut self) {
        if let Some(db) = &self.db {
            if let Err(e) = db.entries.rotate_memtable_and_wait() {
                log::warn!("{}: cannot write out the journal: {e}", self.path.display());
            }
        }
    }
}

/// Opens the keyspace in `path`. A damaged keyspace may make fjall panic rather than
/// fail: that is a refusal too.
fn open_db(path: &Path) -> Result<Db, Error> {
    let opened = std::panic::catch_unwind(|| -> Result<Db, fjall::Error> {
        let keyspace = fjall::Config::new(path).open()?;
        let options = fjall::PartitionCreateOptions::default()
            .compression(fjall::CompressionType::Lz4)
            .manual_journal_persist(true);
        let entries = keyspace.open_partition(ENTRIES, options)?;
        Ok(Db { keyspace, entries })
    });
    match opened {
        Ok(result) => result.map_err(|e| open_error(path, e)),
        Err(_) => Err(damaged(path, "opening it failed")),
    }
}

/// At open, a file fjall cannot seek or read as it expects is a damaged one.
fn open_error(path: &Path, e: fjall::Error) -> Error {
    let invalid = |e: &io::Error| e.kind() == io::ErrorKind::InvalidInput;
    match &e {
        fjall::Error::Io(io) if invalid(io) => damaged(path, &format!("reading it: {io}")),
        fjall::Error::Storage(inner)
            if std::error::Error::source(inner)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .is_some_and(invalid) =>
        {
            damaged(path, &format!("reading it: {inner}"))
        }
        _ => fjall_error(path, e),
    }
}

/// Removes a migrated format 1 or 2 file; a failure only leaves it for the next open.
fn remove_migrated(legacy: &Path) {
    if let Err(e) = std::fs::remove_file(legacy) {
        log::warn!("cannot remove the migrated {}: {e}", legacy.display());
    }
}

pub(crate) fn storage_error(
    path: &Path,
    kind: StorageErrorKind,
    reason: impl Into<String>,
) -> Error {
    Error::Storage {
        path: path.to_owned(),
        kind,
        reason: reason.into(),
    }
}

fn damaged(path: &Path, how: &str) -> Error {
    storage_error(
        path,
        StorageErrorKind::Corrupted,
        format!("the store is damaged ({how}); it is left as it is: move it away to start empty"),
    )
}

fn io_error(path: &Path, doing: &str, e: io::Error) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    ) {
        return damaged(path, &format!("{doing}: {e}"));
    }
    let kind = io_kind(&e);
    storage_error(path, kind, format!("{doing}: {e}"))
}

fn io_kind(e: &io::Error) -> StorageErrorKind {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    if e.kind() == io::ErrorKind::PermissionDenied {
        StorageErrorKind::Permission
    } else if matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
    {
        StorageErrorKind::Full
    } else {
        StorageErrorKind::Io
    }
}

fn fjall_error(path: &Path, e: fjall::Error) -> Error {
    match e {
        fjall::Error::Io(io) => io_error(path, "I/O error", io),
        fjall::Error::Storage(inner) => {
            match std::error::Error::source(&inner).and_then(|s| s.downcast_ref::<io::Error>()) {
                Some(io) => io_error(
                    path,
                    "I/O error",
                    match io.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::new(io.kind(), io.to_string()),
                    },
                ),
                None => damaged(path, &inner.to_string()),
            }
        }
        fjall::Error::InvalidVersion(v) => storage_error(
            path,
            StorageErrorKind::Corrupted,
            format!("not a store this build can read (fjall version {v:?})"),
        ),
        // fjall reports a failed journal write or fsync only as "poisoned" (and refuses
        // everything after it); a full file system is the usual cause and the one the
        // caller can act on, so it is read from the file system.
        fjall::Error::Poisoned => {
            let kind = if lock::file_system_full(path) {
                StorageErrorKind::Full
            } else {
                StorageErrorKind::Io
            };
            storage_error(path, kind, "a write to the store's journal failed")
        }
        fjall::Error::JournalRecovery(e) => damaged(path, &format!("its journal: {e:?}")),
        other => damaged(path, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mesh-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const WALL: u64 = 1_767_225_600_000;
    const GRACE: Duration = Duration::from_secs(3600);

    fn entry(value: i64, hlc: u64, expires: Option<u64>) -> Entry {
        Entry {
            value: Some(Value::Int(value)),
            hlc,
            origin: 9,
            seq: hlc,
            expires,
        }
    }

    fn legacy_meta(format: u32) -> Meta {
        Meta {
            format,
            incarnation: 9,
            hlc: 7,
            wall_ms: WALL,
            vv: vec![(9, vec![(1, 7)])],
        }
    }

    #[test]
    fn format_1_and_2_stores_are_migrated_and_the_old_file_removed() {
        for (format, with_expiry) in [(1, false), (2, true)] {
            let dir = scratch(&format!("migrate{format}"));
            std::fs::create_dir_all(&dir).unwrap();
            let kept = entry(1, 5, with_expiry.then_some(5 + (1000 << 16)));
            let tombstone = Entry {
                value: None,
                ..entry(0, 6, None)
            };
            legacy::write_for_test(
                &dir.join(legacy::FILE),
                &legacy_meta(format),
                &[("kept", &kept), ("gone", &tombstone)],
                with_expiry,
            );
            let (mut store, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
            let mut entries = snapshot.entries.clone();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                entries,
                vec![("gone".to_owned(), tombstone), ("kept".to_owned(), kept)]
            );
            assert_eq!(snapshot.vv, legacy_meta(format).vv);
            assert_eq!((snapshot.hlc, snapshot.incarnation), (7, 9));
            assert!(!dir.join(legacy::FILE).exists(), "the old file is removed");
            store.begin_run(10, WALL).unwrap();
            drop(store);
            // Reopened from the new store alone, in this build's format.
            let (store, again, _) = Store::open(&dir, WALL, GRACE).unwrap();
            assert_eq!(again.entries.len(), 2);
            assert_eq!(again.incarnation, 10);
            assert_eq!(store.meta.format, FORMAT);
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_migration_cut_short_after_its_commit_keeps_the_new_store() {
        let dir = scratch("migrate-leftover");
        std::fs::create_dir_all(&dir).unwrap();
        let old = entry(1, 5, None);
        legacy::write_for_test(
            &dir.join(legacy::FILE),
            &legacy_meta(2),
            &[("old", &old)],
            true,
        );
        let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
        let newer = entry(2, 8, None);
        let batch = StoreBatch {
            changes: [(Arc::from("old"), Some(newer.clone()))]
                .into_iter()
                .collect(),
            collected: Vec::new(),
            vv: None,
            hlc: 8,
            wall_ms: WALL,
        };
        store.commit(&batch).unwrap();
        drop(store);
        // The old file is back, as if its removal had not happened: it must not win.
        legacy::write_for_test(
            &dir.join(legacy::FILE),
            &legacy_meta(2),
            &[("old", &old)],
            true,
        );
        let (_, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(snapshot.entries, vec![("old".to_owned(), newer)]);
        assert!(!dir.join(legacy::FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_absorbed_batch_keeps_each_key_once_as_the_later_batch_left_it() {
        let batch = |changes: Vec<(&str, Option<Entry>)>, hlc| StoreBatch {
            changes: changes
                .into_iter()
                .map(|(k, e)| (Arc::from(k), e))
                .collect(),
            collected: Vec::new(),
            vv: None,
            hlc,
            wall_ms: WALL,
        };
        let mut failed = batch(vec![("a", Some(entry(1, 1, None))), ("b", None)], 1);
        failed.absorb(batch(
            vec![("b", Some(entry(2, 2, None))), ("c", None), ("a", None)],
            2,
        ));
        let mut changes = failed.changes.clone();
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            changes,
            vec![
                (Arc::from("a"), None),
                (Arc::from("b"), Some(entry(2, 2, None))),
                (Arc::from("c"), None),
            ]
        );
        assert_eq!(failed.hlc, 2);
    }

    fn tombstone(hlc: u64) -> Entry {
        Entry {
            value: None,
            ..entry(0, hlc, None)
        }
    }

    #[test]
    fn collected_deletes_are_kept_apart_from_the_entries_until_forgotten() {
        let dir = scratch("collected");
        let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
        let mut batch = StoreBatch {
            changes: vec![
                (Arc::from("k"), None),
                (Arc::from("held"), Some(entry(1, 3, None))),
            ],
            collected: vec![
                (Arc::from("k"), Some(tombstone(5))),
                (Arc::from("x"), Some(tombstone(6))),
            ],
            vv: None,
            hlc: 6,
            wall_ms: WALL,
        };
        store.commit(&batch).unwrap();
        drop(store);
        let (mut store, snapshot, report) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(
            snapshot.entries,
            vec![("held".to_owned(), entry(1, 3, None))]
        );
        assert_eq!(
            report.loaded_entries, 1,
            "collected deletes are not entries"
        );
        let mut collected = snapshot.collected.clone();
        collected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            collected,
            vec![
                ("k".to_owned(), tombstone(5)),
                ("x".to_owned(), tombstone(6))
            ]
        );
        batch.changes.clear();
        batch.collected = vec![(Arc::from("x"), None)];
        store.commit(&batch).unwrap();
        drop(store);
        let (_, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(snapshot.collected, vec![("k".to_owned(), tombstone(5))]);
        // Older than the grace: discarded with the entries.
        let (_, stale, report) =
            Store::open(&dir, WALL + 2 * GRACE.as_millis() as u64, GRACE).unwrap();
        assert!(report.discarded_stale);
        assert!(stale.collected.is_empty() && stale.entries.is_empty());
        let (_, again, _) = Store::open(&dir, WALL + 2 * GRACE.as_millis() as u64, GRACE).unwrap();
        assert!(again.collected.is_empty(), "removed from disk too");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_collected_delete_with_a_value_is_refused() {
        let dir = scratch("collected-value");
        let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
        let batch = StoreBatch {
            collected: vec![(Arc::from("k"), Some(entry(1, 5, None)))],
            hlc: 5,
            wall_ms: WALL,
            ..StoreBatch::default()
        };
        store.commit(&batch).unwrap();
        drop(store);
        match Store::open(&dir, WALL, GRACE) {
            Err(Error::Storage { kind, reason, .. }) => {
                assert_eq!(kind, StorageErrorKind::Corrupted, "{reason}");
                assert!(reason.contains("collected delete with a value"), "{reason}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_format_3_store_is_read_as_it_is_and_written_in_this_format() {
        let dir = scratch("format3");
        {
            let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
            store.meta.format = 3;
            let batch = StoreBatch {
                changes: vec![(Arc::from("a"), Some(entry(1, 5, None)))],
                hlc: 5,
                wall_ms: WALL,
                ..StoreBatch::default()
            };
            store.commit(&batch).unwrap();
        }
        let (mut store, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(snapshot.entries, vec![("a".to_owned(), entry(1, 5, None))]);
        store.begin_run(10, WALL).unwrap();
        drop(store);
        let (store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(store.meta.format, FORMAT);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_later_format_is_refused() {
        let dir = scratch("format9");
        {
            let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
            store.meta.format = 9;
            store.begin_run(9, WALL).unwrap();
        }
        match Store::open(&dir, WALL, GRACE) {
            Err(Error::Storage { kind, reason, .. }) => {
                assert_eq!(kind, StorageErrorKind::Corrupted);
                assert!(reason.contains("store format 9"), "{reason}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_later_format_in_an_old_file_is_refused_and_left_in_place() {
        let dir = scratch("legacy9");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(legacy::FILE);
        legacy::write_for_test(&file, &legacy_meta(9), &[], true);
        match Store::open(&dir, WALL, GRACE) {
            Err(Error::Storage { kind, reason, path }) => {
                assert_eq!(kind, StorageErrorKind::Corrupted);
                assert!(reason.contains("store format 9"), "{reason}");
                assert_eq!(path, file);
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert!(file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_moved_to_another_key_is_refused() {
        let dir = scratch("moved");
        let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
        store.begin_run(9, WALL).unwrap();
        // The stored bytes of "a", put under "b": the CRC covers the key.
        let mut buf = Vec::new();
        encode_entry(&mut buf, b"a", &entry(1, 5, None));
        let db = store.db().unwrap();
        db.entries.insert("b", buf.as_slice()).unwrap();
        db.keyspace.persist(fjall::PersistMode::SyncAll).unwrap();
        drop(store);
        match Store::open(&dir, WALL, GRACE) {
            Err(Error::Storage { kind, reason, .. }) => {
                assert_eq!(kind, StorageErrorKind::Corrupted, "{reason}");
                assert!(reason.contains("garbled entry"), "{reason}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
