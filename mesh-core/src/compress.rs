//! Compression of datagram payloads with zstd, used only where it wins.
//!
//! A packet's postcard payload is compressed before it is sealed (ciphertext does not
//! compress) when the receiver said it reads compressed payloads (the header flag
//! [`crate::wire::FLAG_ACCEPTS_COMPRESSED`] on its datagrams) and the payload is long
//! enough to gain: probes and acks go as they are, deltas shrink. The flag
//! [`crate::wire::FLAG_COMPRESSED`] marks a compressed payload.
//!
//! A message larger than one datagram (a stream's chunk of a delta, a burst's push) is
//! also compressed whole, before it is cut into fragments, as a [`Message::Packed`]:
//! one zstd frame over many entries shares its tables and finds the repeats between
//! entries, where a datagram's 1,200 bytes hold only about ten of them.
//!
//! Decompression is bounded: a datagram payload that would grow past the largest datagram
//! this build can send, or a packed message past [`PACKED_MAX`], is refused as malformed,
//! so a small input cannot make a node allocate more than that.

use crate::config::MAX_DATAGRAM_SIZE;
use crate::wire::{self, DropReason, Message};

/// Payloads shorter than this are sent as they are: a zstd frame's header and tables
/// cost more than a probe or an ack could save.
pub const MIN_INPUT: usize = 192;
/// A compressed payload is used only if it saves at least this many bytes.
const MIN_SAVING: usize = 16;
/// zstd's fastest standard level: a datagram compresses in microseconds.
const LEVEL: i32 = 1;
/// The largest message compressed whole, and the most a packed message may decompress
/// to: a larger one (a single large value) goes as it is, its datagrams compressed one
/// by one.
pub const PACKED_MAX: usize = 64 * 1024;
/// How many bytes of entries a stream or a push puts in one message to a peer that reads
/// packed messages. zstd's gain flattens out past about a hundred 100-byte entries
/// (about a tenth fewer bytes than a datagram's ten); a larger chunk only makes the
/// receiver wait longer for the datagram that completes it.
pub const PACKED_CHUNK: usize = 16 * 1024;

/// Reusable zstd contexts (allocated once per engine, not per datagram).
pub struct Codec {
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec")
    }
}

impl Codec {
    /// New contexts. `None` if zstd cannot allocate them; the engine then sends and reads
    /// plain payloads only.
    pub fn new() -> Option<Codec> {
        Some(Codec {
            compressor: zstd::bulk::Compressor::new(LEVEL).ok()?,
            decompressor: zstd::bulk::Decompressor::new().ok()?,
        })
    }

    /// `payload` compressed, if that saves at least [`MIN_SAVING`] bytes.
    pub fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < MIN_INPUT {
            return None;
        }
        let compressed = self.compressor.compress(payload).ok()?;
        (compressed.len() + MIN_SAVING <= payload.len()).then_some(compressed)
    }

    /// The payload inside a compressed one, at most [`MAX_DATAGRAM_SIZE`] bytes.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, DropReason> {
        self.decompress_at_most(compressed, MAX_DATAGRAM_SIZE)
    }

    fn decompress_at_most(&mut self, compressed: &[u8], limit: usize) -> Result<Vec<u8>, DropReason> {
        // The frame states its size (every sender writes it), so the buffer is allocated
        // to fit: one of `limit` bytes for each datagram and packed message cost a
        // 64 KiB allocation and its page faults each time. A frame without it (only a
        // crafted one) is still read within `limit`; one stating more is malformed.
        let capacity = match zstd::zstd_safe::get_frame_content_size(compressed) {
            Ok(Some(size)) if size <= limit as u64 => size as usize,
            Ok(None) => limit,
            _ => return Err(DropReason::Malformed),
        };
        self.decompressor
            .decompress(compressed, capacity)
            .map_err(|_| DropReason::Malformed)
    }

    /// `message` (an encoded [`Message`]) as an encoded [`Message::Packed`], if it is
    /// longer than `fits` (a message one datagram carries is compressed with the
    /// datagram), at most [`PACKED_MAX`], and compressing it saves at least
    /// [`MIN_SAVING`] bytes; else `message` as it is.
    pub fn pack(&mut self, message: Vec<u8>, fits: usize) -> Vec<u8> {
        if message.len() <= fits || message.len() > PACKED_MAX {
            return message;
        }
        match self.compress(&message) {
            Some(compressed) => {
                wire::encode_message(&Message::Packed(serde_bytes::ByteBuf::from(compressed)))
            }
            None => message,
        }
    }

    /// The message inside a packed one. A packed message inside it, or one larger than
    /// [`PACKED_MAX`], is malformed: no sender makes either.
    pub fn unpack(&mut self, packed: &[u8]) -> Result<Message, DropReason> {
        match wire::decode_message(&self.decompress_at_most(packed, PACKED_MAX)?)? {
            Message::Packed(_) => Err(DropReason::Malformed),
            message => Ok(message),
        }
    }
}

/// `message`, packed with `codec` if there is one (the peer reads compressed payloads)
/// and it wins (see [`Codec::pack`]).
pub fn pack_for(codec: Option<&mut Codec>, message: Vec<u8>, fits: usize) -> Vec<u8> {
    match codec {
        Some(codec) => codec.pack(message, fits),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta_like(n: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(format!("key/{i:08}").as_bytes());
            out.extend((0..100).map(|_| rng.alphanumeric() as u8));
        }
        out
    }

    #[test]
    fn a_delta_shrinks_and_comes_back_whole() {
        let mut codec = Codec::new().unwrap();
        let payload = delta_like(10);
        let compressed = codec.compress(&payload).expect("worth compressing");
        assert!(compressed.len() < payload.len() * 9 / 10, "{}", compressed.len());
        assert_eq!(codec.decompress(&compressed).unwrap(), payload);
    }

    #[test]
    fn frames_stating_no_size_are_read_and_those_stating_too_much_refused() {
        let mut codec = Codec::new().unwrap();
        let payload = delta_like(10);
        let mut sizeless = zstd::bulk::Compressor::new(LEVEL).unwrap();
        sizeless
            .set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
            .unwrap();
        let compressed = sizeless.compress(&payload).unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&compressed),
            Ok(None)
        ));
        assert_eq!(codec.decompress(&compressed).unwrap(), payload);
        let large = vec![b'a'; MAX_DATAGRAM_SIZE + 1];
        let compressed = zstd::bulk::compress(&large, LEVEL).unwrap();
        assert_eq!(codec.decompress(&compressed), Err(DropReason::Malformed));
    }

    #[test]
    fn short_or_incompressible_payloads_go_as_they_are() {
        let mut codec = Codec::new().unwrap();
        assert_eq!(codec.compress(&[7; MIN_INPUT - 1]), None);
        let mut rng = fastrand::Rng::with_seed(9);
        let noise: Vec<u8> = (0..1000).map(|_| rng.u8(..)).collect();
        assert_eq!(codec.compress(&noise), None);
    }

    fn delta_message(n: usize) -> Vec<u8> {
        use crate::wire::{Delta, Group, WireEntry};
        let mut rng = fastrand::Rng::with_seed(4);
        let entries = (0..n as u64)
            .map(|seq| WireEntry {
                seq,
                hlc: seq << 16,
                key: format!("key/{seq:08}").into(),
                value: Some(crate::Value::from(
                    (0..100).map(|_| rng.alphanumeric()).collect::<String>(),
                )),
                expires: None,
            })
            .collect();
        let groups = vec![Group { origin: 1, lo: 0, hi: n as u64, entries }];
        wire::encode_message(&Message::Delta(Delta { groups }))
    }

    #[test]
    fn a_chunk_packs_smaller_than_its_datagrams_would_and_unpacks_whole() {
        let mut codec = Codec::new().unwrap();
        let message = delta_message(120);
        assert!(message.len() <= PACKED_CHUNK);
        let packed = codec.pack(message.clone(), 1_150);
        let datagrams: usize = message
            .chunks(1_150)
            .map(|c| codec.compress(c).map_or(c.len(), |z| z.len()))
            .sum();
        assert!(
            packed.len() * 100 < datagrams * 95,
            "packed {} B, compressed datagram by datagram {datagrams} B",
            packed.len()
        );
        let Ok(Message::Packed(inner)) = wire::decode_message(&packed) else {
            panic!("not packed");
        };
        assert_eq!(codec.unpack(&inner), wire::decode_message(&message));
    }

    #[test]
    fn a_chunk_of_100_character_values_packs_close_to_their_entropy() {
        // 100 random letters and digits carry 74.4 bytes of information. The keys and
        // fields around them took 5.8 bytes more as rows of entries, 2.9 as columns.
        let mut codec = Codec::new().unwrap();
        let message = delta_message(120);
        let Ok(Message::Packed(inner)) = wire::decode_message(&codec.pack(message, 1_150)) else {
            panic!("not packed");
        };
        let per_entry = inner.len() as f64 / 120.0;
        assert!(per_entry < 78.0, "{per_entry:.1} bytes an entry");
    }

    #[test]
    fn messages_that_fit_a_datagram_or_exceed_the_bound_go_as_they_are() {
        let mut codec = Codec::new().unwrap();
        let small = delta_message(8);
        assert_eq!(codec.pack(small.clone(), small.len()), small);
        let huge = delta_message(PACKED_MAX / 100);
        assert!(huge.len() > PACKED_MAX);
        assert_eq!(codec.pack(huge.clone(), 1_150), huge);
    }

    #[test]
    fn a_bomb_is_refused_not_inflated() {
        let mut codec = Codec::new().unwrap();
        // 1 MiB of zeros compresses to a few dozen bytes: more than any datagram holds.
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 19).unwrap();
        assert!(bomb.len() < 200);
        assert_eq!(codec.decompress(&bomb), Err(DropReason::Malformed));
        assert_eq!(codec.decompress(b"not zstd"), Err(DropReason::Malformed));
    }
}
