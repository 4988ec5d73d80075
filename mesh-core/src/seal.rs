//! Sealing: authenticated encryption of every datagram with a pre-shared keyring.
//!
//! With a keyring, every datagram leaves sealed with XChaCha20-Poly1305 (HChaCha20 from
//! RustCrypto's `chacha20`, then ring's ChaCha20-Poly1305: see [`aead`]) under the primary key, and a datagram is accepted only if it opens
//! under one of the installed keys. Without one, datagrams travel in plaintext, and a
//! sealed datagram is refused: a mixed mesh fails closed, and both sides say so.
//!
//! ```text
//!  0      2     3     4      5      6            10         12          16
//!  +------+-----+-----+------+------+------------+----------+-----------+
//!  |magic |ver  |kind |flags |rsvd  | cluster id | pay. len | CRC-32    |   header
//!  | "MS" | 2   | 1   | 0x01 | 0    | u32 BE     | u16 BE   | u32 BE    |
//!  +------+-----+-----+------+------+------------+----------+-----------+
//!  16        20                      44                        len+16-16   len+16
//!  +---------+-----------------------+---------------------------+----------+
//!  | key id  | nonce: prefix | counter| ciphertext of the packet  | tag      |   payload
//!  | 4 bytes | 16 bytes      | u64 BE | (postcard, as plaintext)  | 16 bytes |
//!  +---------+-----------------------+---------------------------+----------+
//! ```
//!
//! - **Associated data**: header bytes 0..12 (magic, version, kind, flags, reserved,
//!   cluster id, payload length). The CRC-32 (bytes 12..16) covers those 12 bytes and the
//!   whole sealed payload, as for a plaintext datagram, and is checked first: a datagram
//!   corrupted in transit counts as `bad_checksum`, a forged or foreign one as
//!   `unauthenticated`. The CRC is a deterministic function of authenticated bytes, so
//!   the whole header is covered.
//! - **Key id**: the first 4 bytes of the key's fingerprint (SHA-256 of the key); it
//!   picks which installed keys to try, it proves nothing.
//! - **Nonce**: 24 bytes, a 16-byte prefix drawn from OS entropy once per engine (the
//!   runtime passes it in: the engine is deterministic) then a counter incremented for
//!   every datagram sealed. A nonce never repeats under one key: a prefix is not reused
//!   across runs, and within a run the counter does not wrap.
//! - **Overhead**: [`SEAL_OVERHEAD`] = 4 + 24 + 16 = 44 bytes per datagram.
//!
//! Replays: every sealed datagram carries a fresh (prefix, counter) pair, authenticated by
//! the tag. The receiver keeps, per sender prefix, a sliding window of the counters it
//! accepted (like IPsec and WireGuard); a datagram whose counter was already accepted, or
//! is older than the window, is dropped before decoding and counted as `duplicate`. A
//! captured heartbeat or message replayed from another address therefore changes nothing.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use self::aead::{XChaCha, NONCE_LEN, TAG_LEN};

use crate::compress::Codec;
use crate::error::KeyError;
use crate::time::Now;
use crate::wire::{
    self, DropReason, Packet, FLAG_ACCEPTS_COMPRESSED, FLAG_COMPRESSED, FLAG_SEALED, HEADER_LEN,
};

mod aead;

/// Bytes of a key.
pub const KEY_LEN: usize = aead::KEY_LEN;
/// Bytes of a key id on the wire.
const KEY_ID_LEN: usize = 4;
/// Bytes of a nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 16;
/// Bytes a sealed datagram has beyond its plaintext: key id, nonce and tag.
pub const SEAL_OVERHEAD: usize = KEY_ID_LEN + NONCE_LEN + TAG_LEN;
/// Counters remembered per sender: a datagram reordered further than this behind the
/// newest one from its sender is dropped (reliable delivery sends it again, resealed).
const REPLAY_WINDOW: u64 = 1024;
/// Senders (nonce prefixes) remembered; the least recently heard is forgotten first.
const MAX_SENDERS: usize = 1024;
/// Shortest time between two warnings about unauthenticated datagrams.
const WARN_INTERVAL_US: u64 = 10_000_000;

/// A 32-byte pre-shared key. Its text form is standard base64; its [`Key::fingerprint`]
/// is what status, logs and `Debug` show, never the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, KeyError> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Length { len: bytes.len() })?;
        Ok(Key(bytes))
    }

    /// A key from standard base64 (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Base64)?;
        Key::from_bytes(&bytes)
    }

    /// The key in standard base64.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key's public name: the first 8 bytes of its SHA-256, in lower-case hex.
    pub fn fingerprint(&self) -> String {
        self.digest()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    fn id(&self) -> [u8; KEY_ID_LEN] {
        let d = self.digest();
        [d[0], d[1], d[2], d[3]]
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

/// A new random key from the operating system's entropy.
pub fn generate_key() -> Result<Key, KeyError> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Entropy(e.to_string()))?;
    Ok(Key(bytes))
}

/// The random part of every nonce an engine seals with. It must never repeat between
/// engines sharing a key: the node runtime draws it from OS entropy
/// ([`NoncePrefix::from_os`]); the simulator derives it from its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoncePrefix(pub [u8; NONCE_PREFIX_LEN]);

impl NoncePrefix {
    /// A prefix from the operating system's entropy.
    pub fn from_os() -> Result<NoncePrefix, KeyError> {
        let mut bytes = [0u8; NONCE_PREFIX_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Entropy(e.to_string()))?;
        Ok(NoncePrefix(bytes))
    }
}

/// An installed key with its cipher.
struct Slot {
    key: Key,
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha,
}

impl Slot {
    fn new(key: Key) -> Slot {
        let cipher = XChaCha::new(&key.0);
        Slot {
            id: key.id(),
            key,
            cipher,
        }
    }
}

/// Counters accepted from one sender.
struct Window {
    /// Highest counter accepted.
    top: u64,
    /// Bit `c % REPLAY_WINDOW` is set when counter `c` (within the window) was accepted.
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
    last_us: u64,
}

impl Window {
    fn new(counter: u64, now_us: u64) -> Window {
        let mut w = Window {
            top: counter,
            bits: [0; (REPLAY_WINDOW / 64) as usize],
            last_us: now_us,
        };
        w.set(counter);
        w
    }

    fn bit(c: u64) -> (usize, u64) {
        let i = c % REPLAY_WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, c: u64) {
        let (word, mask) = Window::bit(c);
        self.bits[word] |= mask;
    }

    /// Whether `c` is new; records it if so.
    fn accept(&mut self, c: u64, now_us: u64) -> bool {
        if c > self.top {
            if c - self.top >= REPLAY_WINDOW {
                self.bits = [0; (REPLAY_WINDOW / 64) as usize];
            } else {
                for old in self.top + 1..c {
                    let (word, mask) = Window::bit(old);
                    self.bits[word] &= !mask;
                }
            }
            self.top = c;
        } else {
            if self.top - c >= REPLAY_WINDOW {
                return false;
            }
            let (word, mask) = Window::bit(c);
            if self.bits[word] & mask != 0 {
                return false;
            }
        }
        self.set(c);
        self.last_us = now_us;
        true
    }
}

/// The engine's sealing room: the keyring, the nonce sequence, the replay windows and the
/// rate-limited warning about unauthenticated datagrams.
pub struct Seal {
    node_id: String,
    /// Installed keys, the primary first. Empty: plaintext.
    keys: Vec<Slot>,
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u64,
    windows: BTreeMap<[u8; NONCE_PREFIX_LEN], Window>,
    last_warn_us: Option<u64>,
    unwarned: u64,
    /// zstd contexts; `None`: this node neither sends nor reads compressed payloads.
    codec: Option<Codec>,
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seal")
            .field("keys", &self.fingerprints())
            .field("counter", &self.counter)
            .field("senders", &self.windows.len())
            .finish()
    }
}

impl Seal {
    /// A sealing room with `keyring` (the primary first; empty: plaintext).
    pub fn new(node_id: &str, keyring: &[Key], prefix: NoncePrefix) -> Seal {
        let mut seal = Seal {
            node_id: node_id.to_owned(),
            keys: Vec::new(),
            prefix: prefix.0,
            counter: 0,
            windows: BTreeMap::new(),
            last_warn_us: None,
            unwarned: 0,
            codec: None,
        };
        for key in keyring {
            seal.install(key.clone());
        }
        seal
    }

    /// Turns compressed payloads on or off (see the `compress` module). On, every
    /// datagram says this node reads them, and [`Seal::seal_packet_for`] compresses to
    /// peers that said so too.
    pub fn set_compression(&mut self, on: bool) {
        self.codec = if on { Codec::new() } else { None };
    }

    /// The zstd contexts, if this node reads and sends compressed payloads: shared with
    /// the messages packed whole (see `compress`).
    pub fn codec(&mut self) -> Option<&mut Codec> {
        self.codec.as_mut()
    }

    /// Fingerprints of the installed keys, the primary first.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|s| s.key.fingerprint()).collect()
    }

    /// Installs `key` for opening (and for sealing, if it is the first key). Installing a
    /// key twice changes nothing.
    pub fn install(&mut self, key: Key) {
        if !self.keys.iter().any(|s| s.key == key) {
            self.keys.push(Slot::new(key));
        }
    }

    /// Makes an installed key the primary.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        let at = self.position(key)?;
        let slot = self.keys.remove(at);
        self.keys.insert(0, slot);
        Ok(())
    }

    /// Removes an installed key other than the primary.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyError> {
        match self.position(key)? {
            0 => Err(KeyError::RemovePrimary {
                fingerprint: key.fingerprint(),
            }),
            at => {
                self.keys.remove(at);
                Ok(())
            }
        }
    }

    fn position(&self, key: &Key) -> Result<usize, KeyError> {
        self.keys
            .iter()
            .position(|s| s.key == *key)
            .ok_or_else(|| KeyError::NotInstalled {
                fingerprint: key.fingerprint(),
            })
    }

    /// Whether datagrams are sealed (a keyring is installed): each then carries
    /// [`SEAL_OVERHEAD`] bytes more.
    pub fn is_sealing(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Encodes `packet` into a datagram: sealed under the primary key with a keyring,
    /// plaintext without.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub fn seal_packet(&mut self, cluster: u32, packet: &Packet) -> Vec<u8> {
        self.seal_packet_for(cluster, packet, false)
    }

    /// [`Seal::seal_packet`], compressing the payload first when `compress` (the receiver
    /// reads compressed payloads) and it wins.
    pub fn seal_packet_for(&mut self, cluster: u32, packet: &Packet, compress: bool) -> Vec<u8> {
        let mut plaintext = wire::encode_payload(packet);
        let mut flags = 0;
        if let Some(codec) = self.codec.as_mut() {
            flags |= FLAG_ACCEPTS_COMPRESSED;
            if let Some(compressed) = compress.then(|| codec.compress(&plaintext)).flatten() {
                plaintext = compressed;
                flags |= FLAG_COMPRESSED;
            }
        }
        let Some(primary) = self.keys.first() else {
            return wire::plain_datagram(cluster, flags, &plaintext);
        };
        let mut out = Vec::with_capacity(HEADER_LEN + SEAL_OVERHEAD + plaintext.len());
        out.resize(HEADER_LEN, 0);
        let payload_len = SEAL_OVERHEAD + plaintext.len();
        wire::write_header(&mut out, cluster, FLAG_SEALED | flags, payload_len);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[NONCE_PREFIX_LEN..].copy_from_slice(&self.counter.to_be_bytes());
        // 2^64 datagrams are out of reach; saturating keeps the rule "never reuse" even so
        // by refusing to seal (the peer drops what fails to open) rather than wrapping.
        self.counter = self.counter.saturating_add(1);
        out.extend_from_slice(&primary.id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(&plaintext);
        let aad: [u8; 12] = out[..12].try_into().unwrap_or([0; 12]);
        let tag = primary
            .cipher
            .seal(&nonce, &aad, &mut out[start..])
            // The cipher only fails on inputs longer than any datagram.
            .unwrap_or([0; TAG_LEN]);
        out.extend_from_slice(&tag);
        wire::write_checksum(&mut out);
        out
    }

    /// Checks, authenticates and decodes a received datagram. Everything but the header
    /// check happens only after the datagram proved it was sealed by a keyholder.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub fn open_packet(
        &mut self,
        now: Now,
        from: std::net::SocketAddr,
        cluster: u32,
        datagram: &[u8],
    ) -> Result<Packet, DropReason> {
        self.open_datagram(now, from, cluster, datagram)
            .map(|(packet, _)| packet)
    }

    /// [`Seal::open_packet`], and whether the sender reads compressed payloads.
    pub fn open_datagram(
        &mut self,
        now: Now,
        from: std::net::SocketAddr,
        cluster: u32,
        datagram: &[u8],
    ) -> Result<(Packet, bool), DropReason> {
        let flags = wire::check_header(cluster, datagram)?;
        let reads_compressed = flags & FLAG_ACCEPTS_COMPRESSED != 0;
        let sealed = flags & FLAG_SEALED != 0;
        if self.keys.is_empty() {
            if sealed {
                self.warn(now, from, "is sealed but this node has no keyring");
                return Err(DropReason::Unauthenticated);
            }
            let packet = self.decode(flags, &datagram[HEADER_LEN..])?;
            return Ok((packet, reads_compressed));
        }
        if !sealed {
            self.warn(now, from, "is not sealed");
            return Err(DropReason::Unauthenticated);
        }
        let Some((prefix, counter, plaintext)) = self.open(datagram) else {
            self.warn(now, from, "does not open under any installed key");
            return Err(DropReason::Unauthenticated);
        };
        if !self.accept_counter(prefix, counter, now.mono_us) {
            return Err(DropReason::Replayed);
        }
        let packet = self.decode(flags, &plaintext)?;
        Ok((packet, reads_compressed))
    }

    /// Decodes a plaintext payload, decompressing it first if `flags` say it is
    /// compressed. A node that does not read compressed payloads never said it does, so
    /// one sent to it anyway is malformed.
    fn decode(&mut self, flags: u8, payload: &[u8]) -> Result<Packet, DropReason> {
        if flags & FLAG_COMPRESSED == 0 {
            return wire::decode_payload(payload);
        }
        let codec = self.codec.as_mut().ok_or(DropReason::Malformed)?;
        wire::decode_payload(&codec.decompress(payload)?)
    }

    /// The sender's prefix, counter and plaintext, if the datagram opens under a key.
    fn open(&self, datagram: &[u8]) -> Option<([u8; NONCE_PREFIX_LEN], u64, Vec<u8>)> {
        let payload = &datagram[HEADER_LEN..];
        if payload.len() < SEAL_OVERHEAD {
            return None;
        }
        let (id, rest) = payload.split_at(KEY_ID_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let tag: [u8; TAG_LEN] = tag.try_into().ok()?;
        let aad = &datagram[..12];
        for slot in self.keys.iter().filter(|s| s.id == id) {
            let mut buf = ciphertext.to_vec();
            if slot.cipher.open(&nonce, aad, &mut buf, &tag) {
                let prefix = nonce[..NONCE_PREFIX_LEN].try_into().ok()?;
                let counter = u64::from_be_bytes(nonce[NONCE_PREFIX_LEN..].try_into().ok()?);
                return Some((prefix, counter, buf));
            }
        }
        None
    }

    fn accept_counter(&mut self, prefix: [u8; NONCE_PREFIX_LEN], counter: u64, now_us: u64) -> bool {
        if let Some(window) = self.windows.get_mut(&prefix) {
            return window.accept(counter, now_us);
        }
        if self.windows.len() >= MAX_SENDERS {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.last_us)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.windows.remove(&oldest);
            }
        }
        self.windows.insert(prefix, Window::new(counter, now_us));
        true
    }

    /// Logs an unauthenticated datagram, at most once per [`WARN_INTERVAL_US`].
    fn warn(&mut self, now: Now, from: std::net::SocketAddr, why: &str) {
        self.unwarned += 1;
        if self
            .last_warn_us
            .is_some_and(|t| now.mono_us.saturating_sub(t) < WARN_INTERVAL_US)
        {
            return;
        }
        self.last_warn_us = Some(now.mono_us);
        let count = std::mem::take(&mut self.unwarned);
        log::warn!(
            "{}: dropped {count} unauthenticated datagram(s) since the last warning; the \
             latest, from {from}, {why} (keys installed: {:?})",
            self.node_id,
            self.fingerprints()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, Heartbeat};

    const NOW: Now = Now {
        mono_us: 1,
        wall_ms: 1,
    };

    fn from() -> std::net::SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn key(b: u8) -> Key {
        Key([b; KEY_LEN])
    }

    fn packet() -> Packet {
        Packet {
            src_inc: 5,
            dst_inc: 0,
            src_session: 0,
            dst_session: 0,
            frames: vec![Frame::Heartbeat(Heartbeat {
                node_id: "a".into(),
                fingerprint: 1,
                reply: true,
                members: 0,
                gossip: Vec::new(),
            })],
        }
    }

    fn seal(keys: &[Key], p: u8) -> Seal {
        Seal::new("n", keys, NoncePrefix([p; NONCE_PREFIX_LEN]))
    }

    #[test]
    fn sealed_packets_round_trip() {
        let mut a = seal(&[key(1)], 1);
        let mut b = seal(&[key(1)], 2);
        let datagram = a.seal_packet(7, &packet());
        assert_eq!(datagram[4], FLAG_SEALED);
        assert_eq!(b.open_packet(NOW, from(), 7, &datagram), Ok(packet()));
    }

    #[test]
    fn overhead_is_under_fifty_bytes() {
        let mut a = seal(&[key(1)], 1);
        let sealed = a.seal_packet(7, &packet()).len();
        let plain = wire::encode_packet(7, &packet()).len();
        assert_eq!(sealed - plain, SEAL_OVERHEAD);
        const { assert!(SEAL_OVERHEAD < 50) };
    }

    #[test]
    fn tampering_with_any_byte_fails() {
        let mut a = seal(&[key(1)], 1);
        let datagram = a.seal_packet(7, &packet());
        for at in 0..datagram.len() {
            let mut bad = datagram.clone();
            bad[at] ^= 0x01;
            // A forger recomputes the CRC; it must still fail to open.
            if !(12..HEADER_LEN).contains(&at) {
                wire::write_checksum(&mut bad);
            }
            let mut b = seal(&[key(1)], 2);
            assert!(
                b.open_packet(NOW, from(), 7, &bad).is_err(),
                "byte {at} changed undetected"
            );
        }
    }

    #[test]
    fn a_wrong_key_fails_and_counts_as_unauthenticated() {
        let mut a = seal(&[key(1)], 1);
        let datagram = a.seal_packet(7, &packet());
        let mut b = seal(&[key(2)], 2);
        assert_eq!(
            b.open_packet(NOW, from(), 7, &datagram),
            Err(DropReason::Unauthenticated)
        );
        let mut plain = seal(&[], 3);
        assert_eq!(
            plain.open_packet(NOW, from(), 7, &datagram),
            Err(DropReason::Unauthenticated)
        );
        let unsealed = wire::encode_packet(7, &packet());
        assert_eq!(
            b.open_packet(NOW, from(), 7, &unsealed),
            Err(DropReason::Unauthenticated)
        );
    }

    #[test]
    fn every_key_opens_and_the_primary_seals() {
        let mut a = seal(&[key(1), key(2)], 1);
        let mut b = seal(&[key(2), key(1)], 2);
        let d = a.seal_packet(7, &packet());
        assert_eq!(&d[16..20], &key(1).id());
        assert!(b.open_packet(NOW, from(), 7, &d).is_ok());
        a.use_key(&key(2)).unwrap();
        let d = a.seal_packet(7, &packet());
        assert_eq!(&d[16..20], &key(2).id());
        assert!(matches!(
            a.remove(&key(2)),
            Err(KeyError::RemovePrimary { .. })
        ));
        a.remove(&key(1)).unwrap();
        assert_eq!(a.fingerprints(), [key(2).fingerprint()]);
        assert!(matches!(
            a.use_key(&key(1)),
            Err(KeyError::NotInstalled { .. })
        ));
    }

    #[test]
    fn nonces_never_repeat() {
        let mut a = seal(&[key(1)], 1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let d = a.seal_packet(7, &packet());
            assert!(seen.insert(d[20..44].to_vec()), "nonce reused");
        }
        let mut other = seal(&[key(1)], 2);
        let d = other.seal_packet(7, &packet());
        assert!(seen.insert(d[20..44].to_vec()), "another run's first nonce");
    }

    #[test]
    fn replays_are_refused_and_reordering_within_the_window_is_not() {
        let mut a = seal(&[key(1)], 1);
        let mut b = seal(&[key(1)], 2);
        let d: Vec<_> = (0..5).map(|_| a.seal_packet(7, &packet())).collect();
        assert!(b.open_packet(NOW, from(), 7, &d[3]).is_ok());
        assert!(b.open_packet(NOW, from(), 7, &d[1]).is_ok());
        assert_eq!(
            b.open_packet(NOW, from(), 7, &d[3]),
            Err(DropReason::Replayed)
        );
        assert_eq!(
            b.open_packet(NOW, "10.0.0.1:1".parse().unwrap(), 7, &d[1]),
            Err(DropReason::Replayed)
        );
        for _ in 0..REPLAY_WINDOW {
            a.seal_packet(7, &packet());
        }
        let late = a.seal_packet(7, &packet());
        assert!(b.open_packet(NOW, from(), 7, &late).is_ok());
        assert_eq!(
            b.open_packet(NOW, from(), 7, &d[0]),
            Err(DropReason::Replayed),
            "older than the window"
        );
    }

    #[test]
    fn keys_have_a_text_form_and_show_only_fingerprints() {
        let k = generate_key().unwrap();
        assert_eq!(Key::from_base64(&k.to_base64()).unwrap(), k);
        assert_eq!(k.fingerprint().len(), 16);
        assert!(!format!("{k:?}").contains(&k.to_base64()));
        assert!(matches!(
            Key::from_bytes(&[0; 31]),
            Err(KeyError::Length { len: 31 })
        ));
        assert!(matches!(Key::from_base64("not base64!"), Err(KeyError::Base64)));
        let short = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode([0u8; 16])
        };
        assert!(matches!(
            Key::from_base64(&short),
            Err(KeyError::Length { len: 16 })
        ));
    }
}
