//! Stores of formats 1 and 2: a redb file, `mesh.redb`, read once to migrate it.
//!
//! Table `entries` held key → postcard record + CRC-32 of the record (format 1 records
//! lack the expiry), table `meta` the run record under `"run"`.

// Reading the file is I/O for the runtime.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Deserialize;

use super::record::Meta;
use super::{damaged, storage_error};
use crate::error::{Error, StorageErrorKind};
use crate::replica::Entry;
use crate::value::Value;
use crate::version::OriginId;

/// The file of a format 1 or 2 store inside a data directory.
pub(super) const FILE: &str = "mesh.redb";

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "run";

/// Formats this module reads.
const FORMATS: std::ops::RangeInclusive<u32> = 1..=2;

/// One entry as format 2 stored it.
#[derive(Deserialize)]
struct RecordV2 {
    value: Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
    expires: Option<u64>,
}

/// One entry as format 1 stored it: without the expiry. A format 1 record never decodes
/// as a format 2 one (it ends where the expiry would start), so they tell apart record
/// by record.
#[derive(Deserialize)]
struct RecordV1 {
    value: Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
}

/// An old store's content: its run record (`None` if it has none) and its entries.
pub(super) type Content = (Option<Meta>, Vec<(String, Entry)>);

/// Reads the whole store in `path`.
pub(super) fn read(path: &Path) -> Result<Content, Error> {
    // A damaged file may make redb panic rather than fail: that is a refusal too.
    match std::panic::catch_unwind(|| read_unguarded(path)) {
        Ok(result) => result,
        Err(_) => Err(damaged(path, "reading it failed")),
    }
}

fn read_unguarded(path: &Path) -> Result<Content, Error> {
    let err = |e: redb::Error| redb_error(path, e);
    let db = Database::builder().open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => storage_error(
            path,
            StorageErrorKind::Locked,
            "already in use by another node (one node per data directory)",
        ),
        other => err(other.into()),
    })?;
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = match txn.open_table(META) {
        Ok(table) => match table.get(META_KEY).map_err(|e| err(e.into()))? {
            Some(bytes) => Some(decode::<Meta>(path, bytes.value(), "run record")?),
            None => None,
        },
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(err(e.into())),
    };
    if let Some(meta) = &meta {
        if !FORMATS.contains(&meta.format) {
            return Err(storage_error(
                path,
                StorageErrorKind::Corrupted,
                format!(
                    "written in store format {} by a later build; this build reads formats \
                     {} to {} from {FILE}",
                    meta.format,
                    FORMATS.start(),
                    FORMATS.end()
                ),
            ));
        }
    }
    let mut entries = Vec::new();
    match txn.open_table(ENTRIES) {
        Ok(table) => {
            entries.reserve(table.len().map_err(|e| err(e.into()))? as usize);
            for item in table.iter().map_err(|e| err(e.into()))? {
                let (key, bytes) = item.map_err(|e| err(e.into()))?;
                let entry = match decode::<RecordV2>(path, bytes.value(), "entry") {
                    Ok(r) => Entry {
                        value: r.value,
                        hlc: r.hlc,
                        origin: r.origin,
                        seq: r.seq,
                        expires: r.expires,
                    },
                    Err(e) => match decode::<RecordV1>(path, bytes.value(), "entry") {
                        Ok(r) => Entry {
                            value: r.value,
                            hlc: r.hlc,
                            origin: r.origin,
                            seq: r.seq,
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
    Ok((meta, entries))
}

/// postcard, then a CRC-32 of it (little-endian).
fn decode<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8], what: &str) -> Result<T, Error> {
    let garbled = || damaged(path, &format!("a garbled {what}"));
    let (body, crc) = bytes
        .split_at_checked(bytes.len().wrapping_sub(4))
        .ok_or_else(garbled)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(garbled());
    }
    postcard::from_bytes(body).map_err(|_| garbled())
}

fn redb_error(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Io(io) => super::io_error(path, "I/O error", io),
        redb::Error::Corrupted(msg) => damaged(path, &msg),
        redb::Error::UpgradeRequired(v) => storage_error(
            path,
            StorageErrorKind::Corrupted,
            format!("not a store this build can read (redb file format {v})"),
        ),
        other => storage_error(path, StorageErrorKind::Io, other.to_string()),
    }
}

/// Writes a store as format 1 or 2 left it, for the migration tests.
#[cfg(test)]
pub(super) fn write_for_test(
    path: &Path,
    meta: &Meta,
    entries: &[(&str, &Entry)],
    with_expiry: bool,
) {
    use serde::Serialize;
    #[derive(Serialize)]
    struct V2<'a> {
        value: &'a Option<Value>,
        hlc: u64,
        origin: OriginId,
        seq: u64,
        expires: Option<u64>,
    }
    #[derive(Serialize)]
    struct V1<'a> {
        value: &'a Option<Value>,
        hlc: u64,
        origin: OriginId,
        seq: u64,
    }
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        let mut buf = postcard::to_stdvec(value).unwrap();
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }
    let db = Database::builder().create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(ENTRIES).unwrap();
        for (key, e) in entries {
            let bytes = if with_expiry {
                encode(&V2 {
                    value: &e.value,
                    hlc: e.hlc,
                    origin: e.origin,
                    seq: e.seq,
                    expires: e.expires,
                })
            } else {
                encode(&V1 {
                    value: &e.value,
                    hlc: e.hlc,
                    origin: e.origin,
                    seq: e.seq,
                })
            };
            table.insert(*key, bytes.as_slice()).unwrap();
        }
        let mut table = txn.open_table(META).unwrap();
        table.insert(META_KEY, encode(meta).as_slice()).unwrap();
    }
    txn.commit().unwrap();
}
