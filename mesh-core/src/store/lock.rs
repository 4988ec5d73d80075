//! One node per data directory: an advisory lock (`flock`) on `mesh.lock` in it, held
//! while the store is open. fjall does not lock its directory itself.

// Locking is I/O for the runtime.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::path::Path;

use super::{io_error, storage_error};
use crate::error::{Error, StorageErrorKind};

/// The lock file inside a node's data directory.
pub(super) const LOCK_FILE: &str = "mesh.lock";

const RETRIES: usize = 5;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(40);

/// Held while the store is open; released when dropped (or when the process ends).
#[derive(Debug)]
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`StorageErrorKind::Locked`] naming `store`
    /// if another node (in this process or another) holds it.
    pub(super) fn acquire(dir: &Path, store: &Path) -> Result<DirLock, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| io_error(store, "cannot create its lock file", e))?;
        // A lock released a moment ago may still be held by a process this one is
        // starting (between its fork and its exec): a few short retries.
        for _ in 0..RETRIES {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(rustix::io::Errno::WOULDBLOCK) => std::thread::sleep(RETRY_PAUSE),
                Err(e) => return Err(io_error(store, "cannot lock it", e.into())),
            }
        }
        Err(storage_error(
            store,
            StorageErrorKind::Locked,
            "already in use by another node (one node per data directory)",
        ))
    }
}

/// Whether the file system holding `path` has no room left for a write (less than a
/// megabyte available).
pub(super) fn file_system_full(path: &Path) -> bool {
    const ROOM: u64 = 1 << 20;
    rustix::fs::statvfs(path)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize) < ROOM)
        .unwrap_or(false)
}
