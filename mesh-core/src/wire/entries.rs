//! A group's entries on the wire, each sequence number and timestamp as the difference
//! from the entry before it.
//!
//! A group holds one origin's writes in sequence order, and writes made together carry
//! timestamps a few ticks apart: as differences, the two take a byte or two where whole
//! they took two and eight. zstd does not find that saving itself: the timestamps'
//! shared high bytes are shorter than the matches it looks for, between values it
//! cannot shorten (about 7 bytes of 120 per 100-byte write, measured on `mesh-bench
//! compare`'s join). Differences wrap, so any entry list, sorted or not, encodes and
//! decodes to itself.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WireEntry;
use crate::value::Value;

/// An entry as sent: `seq` and `hlc` relative to the previous entry's (0 for the first).
#[derive(Serialize)]
struct Sent<'a> {
    seq: i64,
    hlc: i64,
    key: &'a str,
    value: &'a Option<Value>,
    expires: Option<u64>,
}

/// An entry as received, before the differences are added up.
#[derive(Deserialize)]
struct Received {
    seq: i64,
    hlc: i64,
    key: String,
    value: Option<Value>,
    expires: Option<u64>,
}

impl<'a> Sent<'a> {
    fn of(entry: &'a WireEntry, (seq, hlc): (u64, u64)) -> Sent<'a> {
        Sent {
            seq: entry.seq.wrapping_sub(seq) as i64,
            hlc: entry.hlc.wrapping_sub(hlc) as i64,
            key: &entry.key,
            value: &entry.value,
            expires: entry.expires,
        }
    }
}

/// The encoded size of `entry` following an entry with `previous` (sequence number,
/// timestamp), or `(0, 0)` first in its group.
pub fn encoded_len(entry: &WireEntry, previous: (u64, u64)) -> Option<usize> {
    postcard::experimental::serialized_size(&Sent::of(entry, previous)).ok()
}

pub fn serialize<S: Serializer>(entries: &[WireEntry], serializer: S) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(entries.len()))?;
    let mut previous = (0, 0);
    for entry in entries {
        seq.serialize_element(&Sent::of(entry, previous))?;
        previous = (entry.seq, entry.hlc);
    }
    seq.end()
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<WireEntry>, D::Error> {
    let received = Vec::<Received>::deserialize(deserializer)?;
    let mut previous = (0u64, 0u64);
    Ok(received
        .into_iter()
        .map(|r| {
            let entry = WireEntry {
                seq: previous.0.wrapping_add(r.seq as u64),
                hlc: previous.1.wrapping_add(r.hlc as u64),
                key: r.key,
                value: r.value,
                expires: r.expires,
            };
            previous = (entry.seq, entry.hlc);
            entry
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_message, encode_message, Delta, Group, Message};

    fn entry(seq: u64, hlc: u64) -> WireEntry {
        WireEntry {
            seq,
            hlc,
            key: format!("k{seq}"),
            value: Some(Value::Int(seq as i64)),
            expires: None,
        }
    }

    fn message(entries: Vec<WireEntry>) -> Message {
        Message::Delta(Delta {
            groups: vec![Group {
                origin: 9,
                lo: 1,
                hi: 1 << 40,
                entries,
            }],
        })
    }

    #[test]
    fn entries_written_together_take_a_byte_each_for_seq_and_timestamp() {
        let hlc = 1_764_800_000_000u64 << 16;
        let first = entry(1_000, hlc);
        let whole = postcard::experimental::serialized_size(&first).unwrap();
        assert_eq!(encoded_len(&entry(1_001, hlc + 3), (1_000, hlc)), Some(whole - 9));
    }

    #[test]
    fn any_entry_list_comes_back_as_it_was() {
        let hlc = 1_764_800_000_000u64 << 16;
        let lists = [
            vec![],
            vec![entry(5, hlc), entry(6, hlc + 1), entry(9, hlc + 70_000)],
            // Out of order, and at the ends of the range: the differences wrap.
            vec![entry(u64::MAX, 0), entry(0, u64::MAX), entry(3, hlc), entry(1, 1)],
        ];
        for entries in lists {
            let m = message(entries);
            let bytes = encode_message(&m);
            assert_eq!(decode_message(&bytes), Ok(m.clone()));
            assert_eq!(encode_message(&decode_message(&bytes).unwrap()), bytes);
        }
    }
}
