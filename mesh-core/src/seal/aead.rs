//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, section 2.3) built from its two halves:
//! HChaCha20, from RustCrypto's `chacha20`, derives a subkey from the key and the first
//! 16 bytes of the nonce; ring's ChaCha20-Poly1305 then seals under that subkey with a
//! 12-byte nonce of four zero bytes and the last 8 bytes of the 24-byte one.
//!
//! The bytes on the wire are exactly those of RustCrypto's `XChaCha20Poly1305` (the tests
//! check both directions). ring's assembly seals a full datagram several times faster than
//! the portable implementation, and sealing sits on the path of every datagram of a keyed
//! mesh.

use chacha20::{hchacha, R20};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

/// Bytes of a key.
pub(super) const KEY_LEN: usize = 32;
/// Bytes of an extended nonce.
pub(super) const NONCE_LEN: usize = 24;
/// Bytes of an authentication tag.
pub(super) const TAG_LEN: usize = 16;
/// Bytes of the nonce that go into the subkey.
const SUBKEY_NONCE_LEN: usize = 16;

/// One key's XChaCha20-Poly1305.
pub(super) struct XChaCha {
    key: chacha20::Key,
}

impl XChaCha {
    pub(super) fn new(key: &[u8; KEY_LEN]) -> XChaCha {
        XChaCha {
            key: chacha20::Key::from(*key),
        }
    }

    /// The ChaCha20-Poly1305 key and nonce that `nonce` stands for under this key.
    fn expand(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let (head, tail) = nonce.split_at(SUBKEY_NONCE_LEN);
        let mut input = chacha20::cipher::array::Array::<u8, _>::default();
        input.copy_from_slice(head);
        let subkey = hchacha::<R20>(&self.key, &input);
        let mut short = [0u8; 12];
        short[4..].copy_from_slice(tail);
        // A 32-byte key is the only length ChaCha20-Poly1305 takes; it cannot be refused.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice())
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes 32-byte keys"));
        (
            LessSafeKey::new(unbound),
            Nonce::assume_unique_for_key(short),
        )
    }

    /// Encrypts `buf` in place; returns the tag. `None` only for a message longer than
    /// ChaCha20 can encrypt under one nonce (256 GiB), far beyond any datagram.
    pub(super) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        let (key, nonce) = self.expand(nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), buf)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad`; on failure `buf`
    /// holds nothing usable.
    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let (key, nonce) = self.expand(nonce);
        key.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(*tag), buf, 0..)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

    fn reference(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*key).into())
    }

    /// Key, nonce, plaintext and associated data.
    type Case = ([u8; KEY_LEN], [u8; NONCE_LEN], Vec<u8>, Vec<u8>);

    fn cases() -> Vec<Case> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..64)
            .map(|i| {
                let mut key = [0u8; KEY_LEN];
                let mut nonce = [0u8; NONCE_LEN];
                rng.fill(&mut key);
                rng.fill(&mut nonce);
                let len = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1200, 1452][i % 11];
                let plaintext = (0..len).map(|_| rng.u8(..)).collect();
                let aad = (0..(i % 13)).map(|_| rng.u8(..)).collect();
                (key, nonce, plaintext, aad)
            })
            .collect()
    }

    #[test]
    fn seals_exactly_as_the_reference_implementation() {
        for (key, nonce, plaintext, aad) in cases() {
            let mut ours = plaintext.clone();
            let tag = XChaCha::new(&key).seal(&nonce, &aad, &mut ours).unwrap();
            let mut theirs = plaintext.clone();
            let their_tag = reference(&key)
                .encrypt_inout_detached(&XNonce::from(nonce), &aad, (&mut theirs[..]).into())
                .unwrap();
            assert_eq!(ours, theirs, "ciphertext, {} bytes", plaintext.len());
            assert_eq!(&tag[..], &their_tag[..], "tag, {} bytes", plaintext.len());
        }
    }

    #[test]
    fn opens_what_the_reference_sealed_and_nothing_altered() {
        for (key, nonce, plaintext, aad) in cases() {
            let mut sealed = plaintext.clone();
            let tag = reference(&key)
                .encrypt_inout_detached(&XNonce::from(nonce), &aad, (&mut sealed[..]).into())
                .unwrap();
            let tag: [u8; TAG_LEN] = tag.as_slice().try_into().unwrap();
            let ours = XChaCha::new(&key);
            let mut opened = sealed.clone();
            assert!(ours.open(&nonce, &aad, &mut opened, &tag));
            assert_eq!(opened, plaintext);

            let mut wrong_tag = tag;
            wrong_tag[0] ^= 1;
            assert!(!ours.open(&nonce, &aad, &mut sealed.clone(), &wrong_tag));
            let mut wrong_nonce = nonce;
            wrong_nonce[3] ^= 1;
            assert!(!ours.open(&wrong_nonce, &aad, &mut sealed.clone(), &tag));
            let mut wrong_aad = aad.clone();
            wrong_aad.push(0);
            assert!(!ours.open(&nonce, &wrong_aad, &mut sealed.clone(), &tag));
            if !sealed.is_empty() {
                sealed[0] ^= 0x80;
                assert!(!ours.open(&nonce, &aad, &mut sealed, &tag));
            }
        }
    }
}
