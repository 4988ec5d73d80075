//! # mesh-core
//!
//! Keeps a key-value state identical on every node of a leaderless mesh, over plain UDP,
//! through packet loss, reordering, duplication, partitions and restarts. Every node
//! accepts writes; conflicts resolve by last-writer-wins on hybrid logical clocks; every
//! node converges.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mesh_core::{Config, Node, Value};
//!
//! # fn main() -> Result<(), mesh_core::Error> {
//! let mut config = Config::new("alpha", 0); // port 0: any free port
//! config.host = "127.0.0.1".into();
//! let alpha = Node::new(config)?;
//! let mut config = Config::new("beta", 0);
//! config.host = "127.0.0.1".into();
//! let beta = Node::new(config)?;
//! beta.add_bootstrap_peer("127.0.0.1", alpha.port())?;
//! alpha.start()?;
//! beta.start()?;
//!
//! alpha.set("temperature", 72.5)?;
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while beta.get("temperature").is_none() && Instant::now() < deadline {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! assert_eq!(beta.get("temperature"), Some(Value::Float(72.5)));
//! # Ok(())
//! # }
//! ```
//!
//! ## Driving the engine yourself
//!
//! [`Node`] is a thin driver around the sans-IO [`Engine`]. To embed the protocol in your
//! own event loop, feed the engine each received datagram (`handle_datagram(now, from,
//! bytes)`) and call `handle_timeout(now)` when the deadline from `poll_timeout()` has
//! come; after every such input or command (`set`, `delete`, ...), drain
//! `poll_transmit(now)` (datagrams to send) and `poll_event()` (application events) until
//! they return `None`. The engine never reads a clock or touches a socket: [`Now`] is
//! always passed in, which is what lets `sim` run whole meshes deterministically.
//!
//! ## Layers
//!
//! - [`Node`]: the runtime. One UDP socket, a network thread, a callback thread. A local
//!   write returns once its callbacks have run; [`Node::watch`] follows the keys under a
//!   prefix ([`watch`]).
//! - [`Engine`]: the sans-IO protocol state machine the node drives (see its docs for the
//!   driving contract). Pure and deterministic: time and randomness are passed in.
//! - Beneath it, one module per concern, internal to the crate: the wire codec, reliable
//!   delivery, members and failure detection, delta anti-entropy, pushes, tombstone
//!   collection, the LWW replica with its version vectors and hybrid logical clock, and
//!   one timer table. The `test-util` feature makes them public for benchmarks and
//!   tests, with no stability promise.
//! - Security: with [`Config::keyring`] set, every datagram is sealed (XChaCha20-Poly1305)
//!   under the primary [`Key`] and accepted only if it opens under an installed one; keys
//!   rotate with no downtime through [`Node::install_key`], [`Node::use_key`] and
//!   [`Node::remove_key`].
//! - [`fault`]: fault injection shared by the runtime's socket edge and the simulator.
//! - `sim` (feature `test-util`): a deterministic network simulator for many engines.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Declares protocol internals: crate-private, public with the `test-util` feature so
/// benchmarks, fuzzers and the simulator's users can reach them.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "test-util")]
            pub mod $name;
            #[cfg(not(feature = "test-util"))]
            mod $name;
        )*
    };
}

pub mod addr;
pub mod config;
mod delivery;
pub mod engine;
pub mod error;
pub mod event;
pub mod fault;
#[cfg(feature = "test-util")]
pub mod harness;
pub mod metrics;
mod node;
pub mod propagation;
mod recent;
mod resend;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;
pub mod status;
pub mod store;
pub mod time;
pub mod value;
mod wake;
pub mod watch;

internal_modules!(
    broadcast, collected, compress, congestion, feed, frontier, hlc, link, members, messages,
    origin, pacing, path, push, replica, retire, seal, seq_index, sync, timers, tombstones,
    transport, verify, version, wire,
);

/// The wire protocol version this build speaks; nodes of other versions ignore each
/// other (their datagrams are counted as `bad_version`).
pub const PROTOCOL_VERSION: u8 = wire::VERSION;

pub use config::Config;
pub use engine::{Engine, KeyEntry, KeyPage, KeyQuery, MemoryReport, Transmit, MAX_TTL};
pub use error::{ConfigError, Error, KeyError, Result, StorageErrorKind};
pub use event::{ChangeOrigin, Event};
pub use fault::{FaultConfig, FaultStats};
pub use metrics::MetricsSnapshot;
pub use node::{resolve, EventHandler, MessageHandler, Node};
pub use propagation::PropagationLag;
pub use seal::{generate_key, Key, NoncePrefix};
pub use status::{Counters, DropCounters, PeerCounts, PeerInfo, PeerState, Status};
pub use store::Durability;
pub use time::Now;
pub use value::{JsonValueError, Value};
pub use watch::{Change, Watch};
