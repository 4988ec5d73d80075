//! Durability: the replica on disk, so a node restarts with its state, offline, and
//! catches up by delta.
//!
//! The engine stays sans-IO. While a store is attached, the replica notes which keys
//! changed (a `StoreLog`); the driver drains them with
//! [`crate::Engine::take_store_batch`] as a [`StoreBatch`] (the current entry of every
//! changed key, or its removal once a tombstone is collected, plus the version vector,
//! the clock's high-water mark and the wall time) and [`Store::commit`]s the batch in one
//! redb write transaction. A batch is a consistent cut of the replica: the version vector
//! on disk never accounts for a write whose entry (or superseder) is not on disk with it.
//!
//! [`Store::open`] reads everything back as a [`Snapshot`] that
//! [`crate::Engine::restore`] installs before the engine starts, so reads work at once.
//!
//! The file is redb (a copy-on-write B-tree with checksummed pages and atomic commits):
//! one table `entries` (key to encoded entry) and one table `meta` (the run record). Each
//! stored record also carries its own CRC-32, so a garbled record is refused at load
//! rather than read as a wrong value.

// The store does I/O for the runtime, and times its load like the runtime would.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, StorageErrorKind};
use crate::replica::Entry;
use crate::value::Value;
use crate::version::OriginId;

/// The file inside a node's data directory.
pub const STORE_FILE: &str = "mesh.redb";

/// Version of the records' layout; a store written by a later layout is refused.
/// Format 2 added the expiry of entries written with a TTL; format 1 stores are read
/// (their records have no expiry) and become format 2 at the next commit, so a build
/// that would ignore expiries refuses them from then on.
const FORMAT: u32 = 2;
/// The oldest format this build reads.
const OLDEST_FORMAT: u32 = 1;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "run";

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
    /// Changed keys: `Some` puts the entry (tombstones included), `None` removes the key
    /// (its tombstone was collected).
    pub(crate) changes: BTreeMap<Arc<str>, Option<Entry>>,
    /// The whole version vector, when it changed.
    pub(crate) vv: Option<StoredVv>,
    /// The clock's high-water mark.
    pub(crate) hlc: u64,
    /// Wall time of the batch, milliseconds since the Unix epoch.
    pub(crate) wall_ms: u64,
}

impl StoreBatch {
    /// Keys put or removed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether no key changed (the batch may still carry the vector, clock and time).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Folds a later batch into this one (a failed commit is retried with what came
    /// after it).
    pub fn absorb(&mut self, later: StoreBatch) {
        self.changes.extend(later.changes);
        if later.vv.is_some() {
            self.vv = later.vv;
        }
        self.hlc = self.hlc.max(later.hlc);
        self.wall_ms = self.wall_ms.max(later.wall_ms);
    }
}

/// A replica as loaded from disk.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub(crate) entries: Vec<(String, Entry)>,
    pub(crate) vv: StoredVv,
    /// The clock's high-water mark: the restored clock starts at or above it.
    pub(crate) hlc: u64,
    /// The last incarnation (origin) that ran on this store; the next must be above it.
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

/// The run record in the `meta` table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Meta {
    format: u32,
    incarnation: u64,
    hlc: u64,
    wall_ms: u64,
    vv: StoredVv,
}

/// One entry as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    value: Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
    expires: Option<u64>,
}

/// One entry as format 1 stored it: a [`Record`] without its last field. A format 1
/// record never decodes as a `Record` (it ends where the expiry would start), so the
/// two tell apart record by record, and a store with both kinds loads.
#[derive(Deserialize)]
struct RecordV1 {
    value: Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
}

impl Record {
    fn into_entry(self) -> Entry {
        Entry {
            value: self.value,
            hlc: self.hlc,
            origin: self.origin,
            seq: self.seq,
            expires: self.expires,
        }
    }
}

/// The node's store: a redb database in its data directory, opened exclusively.
pub struct Store {
    /// `None` after a failed commit: redb refuses everything after an I/O error, so the
    /// next commit reopens the file (which recovers the last committed state).
    db: Option<Database>,
    path: PathBuf,
    meta: Meta,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and loads it. A store last written
    /// more than `grace` before `now_wall_ms` is emptied (its entries and version vector;
    /// the clock floor and the last incarnation are kept). Fails with
    /// [`Error::Storage`] if another node has it open, it is damaged, or it cannot be
    /// read or written; a damaged store is left as it is.
    pub fn open(
        dir: &Path,
        now_wall_ms: u64,
        grace: Duration,
    ) -> Result<(Store, Snapshot, OpenReport), Error> {
        let started = std::time::Instant::now();
        let path = dir.join(STORE_FILE);
        std::fs::create_dir_all(dir).map_err(|e| io_error(&path, "cannot create", e))?;
        // A damaged file may make redb panic rather than fail: that is a refusal too.
        let opened = std::panic::catch_unwind(|| Database::builder().create(&path));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(database_error(&path, e)),
            Err(_) => return Err(damaged(&path, "opening it failed")),
        };
        let mut store = Store {
            db: Some(db),
            path,
            meta: Meta {
                format: FORMAT,
                ..Meta::default()
            },
        };
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.load()));
        let mut snapshot = match loaded {
            Ok(result) => result?,
            Err(_) => return Err(damaged(&store.path, "reading it failed")),
        };
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
            store.discard()?;
            snapshot.entries.clear();
            snapshot.vv.clear();
            report.discarded_stale = true;
        }
        report.loaded_entries = snapshot.entries.len();
        report.load_ms = started.elapsed().as_millis() as u64;
        Ok((store, snapshot, report))
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&mut self) -> Result<&Database, Error> {
        if self.db.is_none() {
            let reopened = std::panic::catch_unwind(|| Database::builder().create(&self.path));
            self.db = Some(match reopened {
                Ok(Ok(db)) => db,
                Ok(Err(e)) => return Err(database_error(&self.path, e)),
                Err(_) => return Err(damaged(&self.path, "reopening it failed")),
            });
        }
        Ok(self.db.as_ref().expect("just opened"))
    }

    fn load(&mut self) -> Result<Snapshot, Error> {
        let path = self.path.clone();
        let err = |e: redb::Error| redb_error(&path, e);
        let txn = self.db()?.begin_read().map_err(|e| err(e.into()))?;
        let meta = match txn.open_table(META) {
            Ok(table) => match table.get(META_KEY).map_err(|e| err(e.into()))? {
                Some(bytes) => Some(decode::<Meta>(&path, bytes.value(), "run record")?),
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err(e.into())),
        };
        if let Some(mut meta) = meta {
            if !(OLDEST_FORMAT..=FORMAT).contains(&meta.format) {
                return Err(storage_error(
                    &path,
                    StorageErrorKind::Corrupted,
                    format!(
                        "written in store format {}, this build reads {OLDEST_FORMAT} to {FORMAT}",
                        meta.format
                    ),
                ));
            }
            // Written back in this build's format from now on.
            meta.format = FORMAT;
            self.meta = meta;
        }
        let mut entries = Vec::new();
        match txn.open_table(ENTRIES) {
            Ok(table) => {
                entries.reserve(table.len().map_err(|e| err(e.into()))? as usize);
                for item in table.iter().map_err(|e| err(e.into()))? {
                    let (key, bytes) = item.map_err(|e| err(e.into()))?;
                    let entry = match decode::<Record>(&path, bytes.value(), "entry") {
                        Ok(record) => record.into_entry(),
                        Err(e) => match decode::<RecordV1>(&path, bytes.value(), "entry") {
                            Ok(old) => Entry {
                                value: old.value,
                                hlc: old.hlc,
                                origin: old.origin,
                                seq: old.seq,
                                expires: None,
                            },
                            Err(_) => return Err(e),
                        },
                    };
                    entries.push((key.value().to_owned(), entry));
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(err(e.into())),
        }
        if !entries.is_empty() && self.meta.wall_ms == 0 {
            return Err(storage_error(
                &path,
                StorageErrorKind::Corrupted,
                "entries without a run record",
            ));
        }
        Ok(Snapshot {
            entries,
            vv: self.meta.vv.clone(),
            hlc: self.meta.hlc,
            incarnation: self.meta.incarnation,
            wall_ms: self.meta.wall_ms,
        })
    }

    fn discard(&mut self) -> Result<(), Error> {
        self.meta.vv.clear();
        let path = self.path.clone();
        let err = |e: redb::Error| redb_error(&path, e);
        let txn = self.db()?.begin_write().map_err(|e| err(e.into()))?;
        txn.delete_table(ENTRIES).map_err(|e| err(e.into()))?;
        write_meta(&txn, &self.meta, &path)?;
        txn.commit().map_err(|e| err(e.into()))
    }

    /// Records the incarnation of the run starting now, durably, before any write of it
    /// exists.
    pub fn begin_run(&mut self, incarnation: u64, wall_ms: u64) -> Result<(), Error> {
        let mut meta = self.meta.clone();
        meta.incarnation = incarnation;
        meta.wall_ms = meta.wall_ms.max(wall_ms);
        let path = self.path.clone();
        let err = |e: redb::Error| redb_error(&path, e);
        let txn = self.db()?.begin_write().map_err(|e| err(e.into()))?;
        write_meta(&txn, &meta, &path)?;
        txn.commit().map_err(|e| err(e.into()))?;
        self.meta = meta;
        Ok(())
    }

    /// Writes `batch` in one transaction, fsync'd before it returns. After a failure the
    /// store is as before the call, and the next commit may be tried.
    pub fn commit(&mut self, batch: &StoreBatch) -> Result<(), Error> {
        let result = self.try_commit(batch);
        if result.is_err() {
            self.db = None;
        }
        result
    }

    fn try_commit(&mut self, batch: &StoreBatch) -> Result<(), Error> {
        let mut meta = self.meta.clone();
        if let Some(vv) = &batch.vv {
            meta.vv = vv.clone();
        }
        meta.hlc = meta.hlc.max(batch.hlc);
        meta.wall_ms = meta.wall_ms.max(batch.wall_ms);
        let path = self.path.clone();
        let err = |e: redb::Error| redb_error(&path, e);
        let txn = self.db()?.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(|e| err(e.into()))?;
            let mut buf = Vec::new();
            for (key, change) in &batch.changes {
                match change {
                    Some(entry) => {
                        buf.clear();
                        encode_into(
                            &mut buf,
                            &Record {
                                value: entry.value.clone(),
                                hlc: entry.hlc,
                                origin: entry.origin,
                                seq: entry.seq,
                                expires: entry.expires,
                            },
                        );
                        table
                            .insert(key.as_ref(), buf.as_slice())
                            .map_err(|e| err(e.into()))?;
                    }
                    None => {
                        table.remove(key.as_ref()).map_err(|e| err(e.into()))?;
                    }
                }
            }
        }
        write_meta(&txn, &meta, &path)?;
        txn.commit().map_err(|e| err(e.into()))?;
        self.meta = meta;
        Ok(())
    }
}

fn write_meta(txn: &redb::WriteTransaction, meta: &Meta, path: &Path) -> Result<(), Error> {
    let err = |e: redb::Error| redb_error(path, e);
    let mut table = txn.open_table(META).map_err(|e| err(e.into()))?;
    let mut buf = Vec::new();
    encode_into(&mut buf, meta);
    table
        .insert(META_KEY, buf.as_slice())
        .map_err(|e| err(e.into()))?;
    Ok(())
}

/// postcard, then a CRC-32 of it (little-endian).
fn encode_into<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    if let Ok(encoded) = postcard::to_extend(value, std::mem::take(buf)) {
        *buf = encoded;
    }
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

fn decode<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8], what: &str) -> Result<T, Error> {
    let damaged = || {
        storage_error(
            path,
            StorageErrorKind::Corrupted,
            format!("the store is damaged (a garbled {what})"),
        )
    };
    let (body, crc) = bytes
        .split_at_checked(bytes.len().wrapping_sub(4))
        .ok_or_else(damaged)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(damaged());
    }
    postcard::from_bytes(body).map_err(|_| damaged())
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

fn database_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => storage_error(
            path,
            StorageErrorKind::Locked,
            "already in use by another node (one node per data directory)",
        ),
        other => redb_error(path, other.into()),
    }
}

fn redb_error(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::DatabaseAlreadyOpen => {
            database_error(path, redb::DatabaseError::DatabaseAlreadyOpen)
        }
        redb::Error::Io(io) => io_error(path, "I/O error", io),
        redb::Error::Corrupted(msg) => storage_error(
            path,
            StorageErrorKind::Corrupted,
            format!("the store is damaged: {msg}"),
        ),
        redb::Error::UpgradeRequired(v) => storage_error(
            path,
            StorageErrorKind::Corrupted,
            format!("not a store this build can read (file format {v})"),
        ),
        other => storage_error(path, StorageErrorKind::Io, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a format 1 record, as format 1 wrote them.
    #[derive(Serialize)]
    struct V1 {
        value: Option<Value>,
        hlc: u64,
        origin: OriginId,
        seq: u64,
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mesh-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const WALL: u64 = 1_767_225_600_000;
    const GRACE: Duration = Duration::from_secs(3600);

    #[test]
    fn expiries_are_kept_and_format_1_stores_still_load() {
        let dir = scratch("format1");
        {
            // A store as format 1 left it: its run record and a record without expiry.
            let (mut store, _, _) = Store::open(&dir, WALL, GRACE).unwrap();
            store.meta.format = 1;
            store.begin_run(9, WALL).unwrap();
            let db = store.db().unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(ENTRIES).unwrap();
                let mut buf = Vec::new();
                let old = V1 {
                    value: Some(Value::Int(1)),
                    hlc: 5,
                    origin: 9,
                    seq: 1,
                };
                encode_into(&mut buf, &old);
                table.insert("old", buf.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let (mut store, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
        assert_eq!(
            snapshot.entries,
            vec![(
                "old".to_owned(),
                Entry {
                    value: Some(Value::Int(1)),
                    hlc: 5,
                    origin: 9,
                    seq: 1,
                    expires: None,
                }
            )]
        );
        // A new record carries its expiry, next to the old one.
        let expiring = Entry {
            value: Some(Value::Int(2)),
            hlc: 6,
            origin: 10,
            seq: 1,
            expires: Some(6 + (1000 << 16)),
        };
        let batch = StoreBatch {
            changes: [(Arc::from("new"), Some(expiring.clone()))]
                .into_iter()
                .collect(),
            vv: None,
            hlc: 6,
            wall_ms: WALL,
        };
        store.begin_run(10, WALL).unwrap();
        store.commit(&batch).unwrap();
        drop(store);
        let (_, snapshot, _) = Store::open(&dir, WALL, GRACE).unwrap();
        let mut entries = snapshot.entries;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(entries[0], ("new".to_owned(), expiring));
        assert_eq!(entries[1].1.expires, None);
        // Written back in this build's format: a build ignoring expiries refuses it.
        let db = Database::builder().create(dir.join(STORE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(META).unwrap();
        let meta: Meta =
            decode(&dir, table.get(META_KEY).unwrap().unwrap().value(), "meta").unwrap();
        assert_eq!(meta.format, FORMAT);
        drop((table, txn, db));
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
}
