//! Compression of datagram payloads with zstd, used only where it wins.
//!
//! A packet's postcard payload is compressed before it is sealed (ciphertext does not
//! compress) when the receiver said it reads compressed payloads (the header flag
//! [`crate::wire::FLAG_ACCEPTS_COMPRESSED`] on its datagrams) and the payload is long
//! enough to gain: probes and acks go as they are, deltas shrink. The flag
//! [`crate::wire::FLAG_COMPRESSED`] marks a compressed payload.
//!
//! Decompression is bounded: a payload that would grow past the largest datagram this
//! build can send is refused as malformed, so a small datagram cannot make a node
//! allocate more than that.

use crate::config::MAX_DATAGRAM_SIZE;
use crate::wire::DropReason;

/// Payloads shorter than this are sent as they are: a zstd frame's header and tables
/// cost more than a probe or an ack could save.
pub const MIN_INPUT: usize = 192;
/// A compressed payload is used only if it saves at least this many bytes.
const MIN_SAVING: usize = 16;
/// zstd's fastest standard level: a datagram compresses in microseconds.
const LEVEL: i32 = 1;

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
        self.decompressor
            .decompress(compressed, MAX_DATAGRAM_SIZE)
            .map_err(|_| DropReason::Malformed)
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
    fn short_or_incompressible_payloads_go_as_they_are() {
        let mut codec = Codec::new().unwrap();
        assert_eq!(codec.compress(&[7; MIN_INPUT - 1]), None);
        let mut rng = fastrand::Rng::with_seed(9);
        let noise: Vec<u8> = (0..1000).map(|_| rng.u8(..)).collect();
        assert_eq!(codec.compress(&noise), None);
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
