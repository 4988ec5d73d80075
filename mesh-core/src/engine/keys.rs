//! Keyring commands: install, use (make primary), remove, list.

use crate::error::KeyError;
use crate::seal::Key;

use super::Engine;

impl Engine {
    /// Installs `key` for opening datagrams. The first key installed in an engine without
    /// keys becomes the primary, and from then on every datagram is sealed. Installing an
    /// installed key changes nothing.
    pub fn install_key(&mut self, key: Key) {
        self.seal.install(key);
    }

    /// Makes an installed key the primary: every datagram is sealed with it from now on.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        self.seal.use_key(key)
    }

    /// Removes an installed key; removing the primary is refused.
    pub fn remove_key(&mut self, key: &Key) -> Result<(), KeyError> {
        self.seal.remove(key)
    }

    /// Fingerprints of the installed keys, the primary first.
    pub fn list_keys(&self) -> Vec<String> {
        self.seal.fingerprints()
    }
}
