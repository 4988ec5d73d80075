//! How an entry and the run record are laid out as stored values: postcard, then a
//! CRC-32 (little-endian) that also covers the key, so a garbled key or value is refused
//! at load rather than read as another key or a wrong value.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{storage_error, StoredVv};
use crate::error::{Error, StorageErrorKind};
use crate::replica::Entry;
use crate::value::Value;
use crate::version::OriginId;

/// The run record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) format: u32,
    pub(super) incarnation: u64,
    pub(super) hlc: u64,
    pub(super) wall_ms: u64,
    pub(super) vv: StoredVv,
}

/// One entry as written: borrowed, so encoding copies nothing but bytes.
#[derive(Serialize)]
struct RecordRef<'a> {
    value: &'a Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
    expires: Option<u64>,
}

/// One entry as read back.
#[derive(Deserialize)]
pub(super) struct Record {
    value: Option<Value>,
    hlc: u64,
    origin: OriginId,
    seq: u64,
    expires: Option<u64>,
}

impl Record {
    pub(super) fn into_entry(self) -> Entry {
        Entry {
            value: self.value,
            hlc: self.hlc,
            origin: self.origin,
            seq: self.seq,
            expires: self.expires,
        }
    }
}

/// Appends the stored form of `entry` under `key` to `buf`.
pub(super) fn encode_entry(buf: &mut Vec<u8>, key: &[u8], entry: &Entry) {
    let record = RecordRef {
        value: &entry.value,
        hlc: entry.hlc,
        origin: entry.origin,
        seq: entry.seq,
        expires: entry.expires,
    };
    encode_into(buf, key, &record);
}

/// Appends the stored form of `value` under `key` to `buf`.
pub(super) fn encode_into<T: Serialize>(buf: &mut Vec<u8>, key: &[u8], value: &T) {
    let start = buf.len();
    if let Ok(encoded) = postcard::to_extend(value, std::mem::take(buf)) {
        *buf = encoded;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(key);
    crc.update(&buf[start..]);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
}

/// Reads a value stored under `key` by [`encode_into`].
pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    path: &Path,
    key: &[u8],
    bytes: &[u8],
    what: &str,
) -> Result<T, Error> {
    let (body, crc) = bytes
        .split_at_checked(bytes.len().wrapping_sub(4))
        .ok_or_else(|| garbled(path, what))?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(body);
    if hasher.finalize().to_le_bytes() != crc {
        return Err(garbled(path, what));
    }
    postcard::from_bytes(body).map_err(|_| garbled(path, what))
}

fn garbled(path: &Path, what: &str) -> Error {
    storage_error(
        path,
        StorageErrorKind::Corrupted,
        format!(
            "the store is damaged (a garbled {what}); it is left as it is: move it away to \
             start empty"
        ),
    )
}
