//! Which key holds each write `(origin, seq)`: how a replica finds the writes of a range
//! a peer lacks, and the collected deletes it remembers (see `collected`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ahash::RandomState;

use crate::version::OriginId;

/// origin -> seq -> key.
#[derive(Debug, Default)]
pub(crate) struct SeqIndex {
    by_origin: HashMap<OriginId, BTreeMap<u64, Arc<str>>, RandomState>,
}

impl SeqIndex {
    /// Notes that `key` holds write `seq` of `origin`.
    pub fn insert(&mut self, origin: OriginId, seq: u64, key: Arc<str>) {
        self.by_origin.entry(origin).or_default().insert(seq, key);
    }

    /// Forgets write `seq` of `origin`, and the origin once none of its writes is left.
    pub fn remove(&mut self, origin: OriginId, seq: u64) {
        if let Some(index) = self.by_origin.get_mut(&origin) {
            index.remove(&seq);
            if index.is_empty() {
                self.by_origin.remove(&origin);
            }
        }
    }

    /// The writes of `origin` in `lo..=hi`, in sequence order, with their keys.
    pub fn range(
        &self,
        origin: OriginId,
        lo: u64,
        hi: u64,
    ) -> impl Iterator<Item = (u64, &Arc<str>)> + '_ {
        self.by_origin
            .get(&origin)
            .into_iter()
            .flat_map(move |index| index.range(lo..=hi))
            .map(|(&seq, key)| (seq, key))
    }

    /// Whether any write of `origin` is indexed.
    pub fn contains_origin(&self, origin: OriginId) -> bool {
        self.by_origin.contains_key(&origin)
    }
}
