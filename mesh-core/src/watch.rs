//! Watches: callbacks for the changes of the keys under one prefix.
//!
//! Register one with [`crate::Node::watch`]; it runs on the node's callback thread, with
//! the node's event handler and every other watch, one at a time and in the order the
//! changes happened. The returned [`Watch`] cancels it when cancelled or dropped.
//!
//! Finding the watches of a key must stay cheap with thousands registered, so a change
//! never visits every watch: prefixes sit in an ordered map, and a key is looked up once
//! for each distinct prefix length no longer than the key (`sensor/` and `door/` are one
//! lookup). With `P` distinct prefix lengths and `N` prefixes, a change costs `P`
//! lookups of `O(log N)`, whatever the number of watches per prefix.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::event::{ChangeOrigin, Event};
use crate::value::Value;

/// One change of a key, as a watch sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change<'a> {
    /// The key that changed.
    pub key: &'a str,
    /// Its new value, or `None` if it is now deleted.
    pub value: Option<&'a Value>,
    /// A local write or a merge from a peer.
    pub origin: ChangeOrigin,
}

/// The callback of a watch.
pub type WatchHandler = Arc<dyn Fn(&Change<'_>) + Send + Sync + 'static>;

/// A registered watch; cancels it when dropped.
///
/// Once [`Watch::cancel`] (or the drop) returns, the callback is not started again; a
/// call already running on the callback thread at that moment finishes. Cancelling from
/// inside a callback is allowed.
#[must_use = "dropping a Watch cancels it"]
pub struct Watch {
    prefix: String,
    cancel: Option<Box<dyn FnOnce() + Send + Sync + 'static>>,
}

impl Watch {
    pub(crate) fn new(prefix: String, cancel: impl FnOnce() + Send + Sync + 'static) -> Watch {
        Watch {
            prefix,
            cancel: Some(Box::new(cancel)),
        }
    }

    /// The prefix this watch follows.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Cancels the watch (the same as dropping it, said out loud).
    pub fn cancel(mut self) {
        self.cancel_now();
    }

    /// Keeps the watch registered for the rest of the node's life, with no handle to
    /// cancel it: for programs that watch until they exit.
    pub fn keep(mut self) {
        self.cancel = None;
    }

    fn cancel_now(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.cancel_now();
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Identifies a watch within one node's registry.
pub type WatchId = u64;

struct Registered {
    id: WatchId,
    /// Cleared on cancel, so a dispatch that already picked this watch skips it.
    active: AtomicBool,
    handler: WatchHandler,
}

#[derive(Default)]
struct Prefixes {
    /// Watches by prefix, each list in registration order.
    by_prefix: BTreeMap<String, Vec<Arc<Registered>>>,
    /// How many prefixes of `by_prefix` have each length, in bytes.
    lengths: BTreeMap<usize, usize>,
}

/// Every watch of one node, found by prefix. [`crate::Node`] keeps one; a program driving
/// the [`crate::Engine`] itself can keep one too and hand it every event.
#[derive(Default)]
pub struct WatchRegistry {
    prefixes: RwLock<Prefixes>,
    next_id: AtomicU64,
}

impl WatchRegistry {
    /// Registers `handler` for the keys starting with `prefix`; returns its id.
    pub fn add(&self, prefix: &str, handler: WatchHandler) -> WatchId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let watch = Arc::new(Registered {
            id,
            active: AtomicBool::new(true),
            handler,
        });
        let mut prefixes = self.prefixes.write();
        let list = prefixes.by_prefix.entry(prefix.to_owned()).or_default();
        let new_prefix = list.is_empty();
        list.push(watch);
        if new_prefix {
            *prefixes.lengths.entry(prefix.len()).or_default() += 1;
        }
        id
    }

    /// Removes the watch `id` registered under `prefix`. Returns its handler, for the
    /// caller to drop outside its own locks (dropping it may run application code).
    pub fn remove(&self, prefix: &str, id: WatchId) -> Option<WatchHandler> {
        let mut prefixes = self.prefixes.write();
        let list = prefixes.by_prefix.get_mut(prefix)?;
        let at = list.iter().position(|w| w.id == id)?;
        let watch = list.remove(at);
        watch.active.store(false, Ordering::Release);
        if list.is_empty() {
            prefixes.by_prefix.remove(prefix);
            if let Some(count) = prefixes.lengths.get_mut(&prefix.len()) {
                *count -= 1;
                if *count == 0 {
                    prefixes.lengths.remove(&prefix.len());
                }
            }
        }
        Some(Arc::clone(&watch.handler))
    }

    /// Whether any watch is registered.
    pub fn is_empty(&self) -> bool {
        self.prefixes.read().by_prefix.is_empty()
    }

    /// Number of watches registered.
    pub fn len(&self) -> usize {
        self.prefixes.read().by_prefix.values().map(Vec::len).sum()
    }

    /// The watches whose prefix `key` starts with: shorter prefixes first, then in
    /// registration order.
    fn matching(&self, key: &str) -> Vec<Arc<Registered>> {
        let prefixes = self.prefixes.read();
        let mut found = Vec::new();
        for &len in prefixes.lengths.range(..=key.len()).map(|(len, _)| len) {
            // A prefix is valid UTF-8, so it can only equal the key's first `len` bytes
            // if they end on a character boundary.
            if !key.is_char_boundary(len) {
                continue;
            }
            if let Some(list) = prefixes.by_prefix.get(&key[..len]) {
                found.extend(list.iter().cloned());
            }
        }
        found
    }

    /// Calls the watches concerned by `event` (only state changes concern watches).
    /// Returns how many were called. A panicking watch is logged and the others still run.
    pub fn dispatch(&self, event: &Event) -> usize {
        let Event::StateChanged { key, value, origin } = event else {
            return 0;
        };
        let change = Change {
            key,
            value: value.as_ref(),
            origin: *origin,
        };
        let mut called = 0;
        for watch in self.matching(key) {
            if !watch.active.load(Ordering::Acquire) {
                continue;
            }
            called += 1;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (watch.handler)(&change);
            }));
            if outcome.is_err() {
                log::error!("mesh-sync watch callback panicked on key {key:?}");
            }
        }
        called
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;

    fn change(key: &str) -> Event {
        Event::StateChanged {
            key: key.to_owned(),
            value: Some(Value::Int(1)),
            origin: ChangeOrigin::Sync,
        }
    }

    fn recorder(registry: &WatchRegistry, prefix: &str, log: &Arc<Mutex<Vec<String>>>) -> WatchId {
        let log = Arc::clone(log);
        let tag = prefix.to_owned();
        registry.add(
            prefix,
            Arc::new(move |c: &Change<'_>| log.lock().push(format!("{tag}:{}", c.key))),
        )
    }

    #[test]
    fn only_watches_whose_prefix_starts_the_key_are_called() {
        let registry = WatchRegistry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        recorder(&registry, "sensor/", &log);
        recorder(&registry, "sensor/temp", &log);
        recorder(&registry, "door/", &log);
        recorder(&registry, "", &log);
        recorder(&registry, "sensor/temperature/outside/too-long", &log);

        assert_eq!(registry.dispatch(&change("sensor/temperature")), 3);
        assert_eq!(registry.dispatch(&change("sensors")), 1);
        assert_eq!(registry.dispatch(&change("door/front")), 2);
        assert_eq!(
            *log.lock(),
            [
                ":sensor/temperature",
                "sensor/:sensor/temperature",
                "sensor/temp:sensor/temperature",
                ":sensors",
                ":door/front",
                "door/:door/front",
            ]
        );
    }

    #[test]
    fn peer_events_reach_no_watch() {
        let registry = WatchRegistry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        recorder(&registry, "", &log);
        let event = Event::PeerFailed {
            node_id: "n2".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(registry.dispatch(&event), 0);
        assert!(log.lock().is_empty());
    }

    #[test]
    fn keys_cut_inside_a_character_match_nothing_and_do_not_panic() {
        let registry = WatchRegistry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Two bytes long, as is "é": the key's first two bytes are inside "€".
        recorder(&registry, "é", &log);
        assert_eq!(registry.dispatch(&change("€uro")), 0);
        assert_eq!(registry.dispatch(&change("été")), 1);
    }

    #[test]
    fn removed_watches_are_not_called_and_leave_no_trace() {
        let registry = WatchRegistry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = recorder(&registry, "a/", &log);
        let b = recorder(&registry, "a/", &log);
        assert_eq!(registry.len(), 2);
        assert!(registry.remove("a/", a).is_some());
        assert!(registry.remove("a/", a).is_none(), "removed once only");
        assert!(
            registry.remove("b/", b).is_none(),
            "the prefix must match too"
        );
        assert_eq!(registry.dispatch(&change("a/x")), 1);
        assert!(registry.remove("a/", b).is_some());
        assert!(registry.is_empty());
        assert_eq!(registry.dispatch(&change("a/x")), 0);
        let prefixes = registry.prefixes.read();
        assert!(prefixes.lengths.is_empty() && prefixes.by_prefix.is_empty());
    }

    #[test]
    fn a_panicking_watch_does_not_stop_the_others() {
        let registry = WatchRegistry::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        registry.add("k", Arc::new(|_: &Change<'_>| panic!("watch bug")));
        recorder(&registry, "k", &log);
        assert_eq!(registry.dispatch(&change("key")), 2);
        assert_eq!(*log.lock(), ["k:key"]);
    }
}
