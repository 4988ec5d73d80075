//! Watches: a C callback for the changes of the keys under a prefix.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use mesh_core::Change;
use parking_lot::{Mutex, ReentrantMutex};

use crate::callback::{call_state, mesh_state_change_callback, StateFn, UserData};
use crate::error::{ffi_boundary, mesh_result, FfiError};
use crate::node::mesh_node_t;
use crate::ptr::{arg_ref, arg_str, free_handle, into_handle, require_out, write_out};

/// The C side of one watch. The lock is held while the callback runs, so that cancelling
/// waits for a call in progress on another thread; it is reentrant because the callback
/// may cancel its own watch.
struct Target {
    slot: ReentrantMutex<Cell<Option<(StateFn, UserData)>>>,
}

impl Target {
    fn call(&self, change: &Change<'_>) {
        let guard = self.slot.lock();
        if let Some((callback, user_data)) = guard.get() {
            // SAFETY: registered together by the C caller, and not yet cancelled (the
            // lock keeps a concurrent cancel waiting until the call returns).
            unsafe { call_state(callback, user_data, change.key, change.value, change.origin) };
        }
    }
}

// SAFETY: `UserData` is only handed back to the C callback it was registered with; the
// registration documents that it must be usable from the callback thread. The cell is
// only touched under the reentrant lock, so by one thread at a time.
unsafe impl Send for Target {}
// SAFETY: as above: every access to the cell goes through the lock.
unsafe impl Sync for Target {}

/// A watch registered by `mesh_node_watch`: cancelled by `mesh_watch_cancel`, released
/// (and cancelled) by `mesh_watch_free`.
pub struct mesh_watch_t {
    target: Arc<Target>,
    core: Mutex<Option<mesh_core::Watch>>,
}

impl mesh_watch_t {
    fn cancel(&self) {
        {
            let guard = self.target.slot.lock();
            guard.set(None);
        }
        let core = self.core.lock().take();
        drop(core);
    }
}

/// Addresses of the watches created and not yet freed, so that freeing one twice is
/// detected and ignored.
static LIVE_WATCHES: Mutex<BTreeSet<usize>> = parking_lot::const_mutex(BTreeSet::new());

/// Calls `callback` for every change of a key starting with `prefix` (NUL-terminated
/// UTF-8, copied; `""` watches every key) and stores the new watch in `*watch_out`.
///
/// The callback has the signature of the state callback and the same rules (see
/// `mesh_node_set_state_callback`): it runs on the node's callback thread, after the
/// state callback, one call at a time and in the order of the changes, and a local write
/// returns only once it has run for that write. A change only visits the watches whose
/// prefix it starts with, so thousands of watches stay cheap.
///
/// `user_data` must stay valid, and usable from the callback thread, until the watch is
/// cancelled or freed, or its node is freed. Release the watch with `mesh_watch_free`
/// (before or after the node). Fails with `MESH_RESULT_NULL_PARAMETER` for a NULL node,
/// prefix, callback or `watch_out`, and `MESH_RESULT_INVALID_UTF8` for a prefix that is
/// not UTF-8; then `*watch_out` is left untouched.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_watch(
    node: *const mesh_node_t,
    prefix: *const c_char,
    callback: mesh_state_change_callback,
    user_data: *mut c_void,
    watch_out: *mut *mut mesh_watch_t,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `prefix` is NULL or a NUL-terminated string.
        let prefix = unsafe { arg_str(prefix, "prefix") }?;
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        require_out(watch_out, "watch_out")?;
        let target = Arc::new(Target {
            slot: ReentrantMutex::new(Cell::new(Some((callback, UserData(user_data))))),
        });
        let dispatch = Arc::clone(&target);
        let core = n.node.watch(prefix, move |change: &Change<'_>| dispatch.call(change));
        let handle = into_handle(mesh_watch_t {
            target,
            core: Mutex::new(Some(core)),
        });
        LIVE_WATCHES.lock().insert(handle as usize);
        // SAFETY: `watch_out` is non-NULL (checked above) and writable.
        unsafe { write_out(watch_out, "watch_out", handle) }
    }
}

/// Cancels a watch: once this returns, its callback does not run again, and a call in
/// progress on another thread has returned, so `user_data` may be released. Allowed
/// from inside the watch's own callback (the call in progress is then the caller's).
/// Cancelling twice is a no-op; the watch must still be freed with `mesh_watch_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_watch_cancel(watch: *const mesh_watch_t) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `watch` is NULL or a live watch.
        let w = unsafe { arg_ref(watch, "watch") }?;
        w.cancel();
        Ok(())
    }
}

/// Cancels the watch (as `mesh_watch_cancel`) and releases it. NULL is a no-op, and so
/// is a watch already freed (as long as no new watch was created at the same address
/// since). Must not be called from inside the watch's own callback.
#[no_mangle]
pub unsafe extern "C" fn mesh_watch_free(watch: *mut mesh_watch_t) {
    ffi_boundary! {
        if watch.is_null() || !LIVE_WATCHES.lock().remove(&(watch as usize)) {
            return;
        }
        // SAFETY: `watch` was live (registered) and the caller gives up all other use.
        unsafe { &*watch }.cancel();
        // SAFETY: registered handles come from `into_handle`; it was unregistered above,
        // so it is dropped exactly once.
        unsafe { free_handle(watch) }
    }
}
