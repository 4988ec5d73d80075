//! Paged, searchable reads of the replica for people watching a node: a state may hold a
//! million keys, so a page is picked in one pass without copying or sorting the whole map.

use std::collections::{BinaryHeap, HashMap};

use crate::hlc;
use crate::value::Value;

use super::Engine;

/// Which live keys to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyQuery<'a> {
    /// Only keys containing this text (case-sensitive); empty matches every key.
    pub contains: &'a str,
    /// Only keys ordered after this one: the previous page's `next_after`.
    pub after: Option<&'a str>,
    /// At most this many entries.
    pub limit: usize,
}

/// One page of live keys, in key order.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPage {
    /// Live keys matching `contains`, on every page together.
    pub matched: usize,
    /// This page's entries.
    pub entries: Vec<KeyEntry>,
    /// The key to pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

/// A live key with what the replica knows of its last write.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyEntry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// Hybrid logical timestamp of the write.
    pub hlc: u64,
    /// Wall-clock milliseconds of the write (the timestamp's physical part).
    pub written_ms: u64,
    /// Origin id (the writer's incarnation).
    pub origin: u64,
    /// The writer's node id, when the origin is this node or a peer's current run.
    pub origin_node: Option<String>,
}

impl Engine {
    /// A page of live keys matching `query`.
    pub fn browse_keys(&self, query: &KeyQuery<'_>) -> KeyPage {
        let mut matched = 0;
        let mut beyond_page = 0;
        // The `limit` smallest keys after `after`: a max-heap evicting its largest.
        let mut page: BinaryHeap<&str> = BinaryHeap::with_capacity(query.limit + 1);
        // Built once for the scan: `str::contains` would prepare the search for every key.
        let finder = memchr::memmem::Finder::new(query.contains);
        for (key, entry) in self.replica.entries() {
            if entry.value.is_none() || finder.find(key.as_bytes()).is_none() {
                continue;
            }
            matched += 1;
            if query.after.is_some_and(|after| key <= after) {
                continue;
            }
            if page.len() >= query.limit {
                beyond_page += 1;
                // Most keys of a large state sort after a full page: one comparison.
                if page.peek().is_none_or(|&last| key >= last) {
                    continue;
                }
                page.pop();
            }
            page.push(key);
        }
        let keys = page.into_sorted_vec();
        let names = self.origin_names();
        let entries: Vec<KeyEntry> = keys
            .iter()
            .filter_map(|key| {
                let entry = self.replica.entry(key)?;
                Some(KeyEntry {
                    key: (*key).to_owned(),
                    value: entry.value.clone()?,
                    hlc: entry.hlc,
                    written_ms: hlc::physical_ms(entry.hlc),
                    origin: entry.origin,
                    origin_node: names.get(&entry.origin).map(|n| (*n).to_owned()),
                })
            })
            .collect();
        let next_after = (beyond_page > 0)
            .then(|| entries.last().map(|e| e.key.clone()))
            .flatten();
        KeyPage {
            matched,
            entries,
            next_after,
        }
    }

    /// Node ids by origin id, for this run and the current run of each known peer.
    fn origin_names(&self) -> HashMap<u64, &str> {
        let mut names: HashMap<u64, &str> = self
            .members
            .iter()
            .filter(|m| m.origin != 0)
            .filter_map(|m| Some((m.origin, m.node_id.as_deref()?)))
            .collect();
        names.insert(self.replica.own_origin(), &self.config.node_id);
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::seal::NoncePrefix;
    use crate::time::Now;

    fn engine_with(keys: &[&str]) -> Engine {
        let now = Now {
            mono_us: 0,
            wall_ms: 1_767_225_600_000,
        };
        let mut engine = Engine::new(Config::new("n", 0), 7, 1, NoncePrefix([1; 16]), now);
        for key in keys {
            engine.set(now, key, Value::Int(key.len() as i64)).unwrap();
        }
        engine
    }

    fn keys_of(page: &KeyPage) -> Vec<&str> {
        page.entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn pages_walk_every_match_in_key_order() {
        let engine = engine_with(&["d", "b", "a", "e", "c"]);
        let first = engine.browse_keys(&KeyQuery {
            limit: 2,
            ..KeyQuery::default()
        });
        assert_eq!((keys_of(&first), first.matched), (vec!["a", "b"], 5));
        assert_eq!(first.next_after.as_deref(), Some("b"));
        let second = engine.browse_keys(&KeyQuery {
            after: first.next_after.as_deref(),
            limit: 2,
            ..KeyQuery::default()
        });
        assert_eq!(keys_of(&second), vec!["c", "d"]);
        let last = engine.browse_keys(&KeyQuery {
            after: second.next_after.as_deref(),
            limit: 2,
            ..KeyQuery::default()
        });
        assert_eq!(keys_of(&last), vec!["e"]);
        assert_eq!(last.next_after, None);
    }

    #[test]
    fn search_keeps_matching_live_keys_only() {
        let mut engine = engine_with(&["sensor/1", "sensor/2", "config", "sensor/3"]);
        let now = Now {
            mono_us: 1,
            wall_ms: 1_767_225_600_001,
        };
        engine.delete(now, "sensor/2").unwrap();
        let page = engine.browse_keys(&KeyQuery {
            contains: "sensor",
            limit: 10,
            ..KeyQuery::default()
        });
        assert_eq!(keys_of(&page), vec!["sensor/1", "sensor/3"]);
        assert_eq!((page.matched, page.next_after), (2, None));
    }

    #[test]
    fn entries_name_their_writer_and_time() {
        let engine = engine_with(&["k"]);
        let page = engine.browse_keys(&KeyQuery {
            limit: 1,
            ..KeyQuery::default()
        });
        let entry = &page.entries[0];
        assert_eq!(entry.value, Value::Int(1));
        assert_eq!(entry.origin, engine.origin());
        assert_eq!(entry.origin_node.as_deref(), Some("n"));
        assert_eq!(entry.written_ms, 1_767_225_600_000);
    }
}
