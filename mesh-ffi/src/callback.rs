//! Event callbacks: C function pointers with a `void *user_data`, called on the node's
//! callback thread.

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::Arc;

use mesh_core::{ChangeOrigin, Event, Value};
use parking_lot::ReentrantMutex;

use crate::error::{ffi_boundary, mesh_result};
use crate::node::mesh_node_t;
use crate::ptr::arg_ref;
use crate::value::{mesh_str, mesh_value_t, nul_terminated};

/// Where a state change came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mesh_change_origin {
    /// A `mesh_node_set_*` call on this node.
    Set = 0,
    /// A `mesh_node_delete` call on this node, or a value written with a TTL
    /// (`mesh_node_set_ttl`) that expired here.
    Delete = 1,
    /// A write received from a peer (a set or a delete there) that changed this replica.
    Sync = 2,
}

/// What happened to a peer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mesh_peer_event {
    /// A node was heard from for the first time.
    Discovered = 0,
    /// A peer stopped answering probes, directly and through other peers, and did not
    /// refute the suspicion in time: it is considered failed.
    Failed = 1,
    /// A failed peer, or a restarted one, was heard from again.
    Recovered = 2,
    /// A peer announced that it stopped (`mesh_node_stop`, `mesh_node_free`).
    Left = 3,
}

/// Called for every change of a key: local writes and writes merged from peers.
///
/// `key` and `value` are lent for the duration of the call: copy what you keep, and do
/// not free `value`. `value` is NULL when the key was deleted; read it with the
/// `mesh_value_get_*` functions or `mesh_value_to_json`.
pub type mesh_state_change_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        key: mesh_str,
        value: *const mesh_value_t,
        origin: mesh_change_origin,
    ),
>;

/// Called when a peer is discovered, fails, or recovers. `node_id` and `addr` (text such
/// as `"127.0.0.1:5000"`) are lent for the duration of the call.
pub type mesh_peer_event_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        event: mesh_peer_event,
        node_id: mesh_str,
        addr: mesh_str,
    ),
>;

/// Called for every user message received (see `mesh_node_send`): `sender_id` is the
/// sending peer's node id, `data` and `len` the message's bytes (`data` is never NULL,
/// even when `len` is 0). Both are lent for the duration of the call: copy what you keep.
pub type mesh_message_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, sender_id: mesh_str, data: *const u8, len: usize),
>;

#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the pointer is only handed back to the C callback it was registered with, on
// the callback thread; the registration functions document that `user_data` must be
// usable from that thread.
unsafe impl Send for UserData {}

pub(crate) type StateFn =
    unsafe extern "C" fn(*mut c_void, mesh_str, *const mesh_value_t, mesh_change_origin);
type PeerFn = unsafe extern "C" fn(*mut c_void, mesh_peer_event, mesh_str, mesh_str);
type MessageFn = unsafe extern "C" fn(*mut c_void, mesh_str, *const u8, usize);

#[derive(Clone, Copy, Default)]
struct Registered {
    state: Option<(StateFn, UserData)>,
    peer: Option<(PeerFn, UserData)>,
    message: Option<(MessageFn, UserData)>,
}

/// The callbacks of one node.
///
/// The lock is held while a callback runs, so that replacing a callback or freeing the
/// node waits until no call with the old `user_data` is in progress. It is reentrant
/// because a callback may itself replace callbacks on its own thread.
#[derive(Default)]
pub(crate) struct Callbacks {
    slot: ReentrantMutex<RefCell<Registered>>,
}

impl Callbacks {
    fn update(this: &Arc<Callbacks>, node: &mesh_core::Node, f: impl FnOnce(&mut Registered)) {
        let guard = this.slot.lock();
        let mut registered = guard.borrow_mut();
        f(&mut registered);
        let wanted =
            registered.state.is_some() || registered.peer.is_some() || registered.message.is_some();
        node.keep_event_handler(
            || wanted,
            || {
                let callbacks = Arc::clone(this);
                move |event: &Event| callbacks.dispatch(event)
            },
        );
    }

    /// Forgets every callback; called when the node is freed.
    pub(crate) fn close(&self) {
        let guard = self.slot.lock();
        let mut registered = guard.borrow_mut();
        registered.state = None;
        registered.peer = None;
        registered.message = None;
    }

    fn dispatch(&self, event: &Event) {
        let guard = self.slot.lock();
        // Copied out so that the callback may re-register (borrow_mut) reentrantly.
        let registered = *guard.borrow();
        match event {
            Event::StateChanged { key, value, origin } => {
                let Some((callback, user_data)) = registered.state else {
                    return;
                };
                // SAFETY: registered together by the C caller.
                unsafe { call_state(callback, user_data, key, value.as_ref(), *origin) };
            }
            Event::Message { sender, data } => {
                let Some((callback, user_data)) = registered.message else {
                    return;
                };
                let sender = nul_terminated(sender.as_bytes());
                // Never NULL, even for an empty message.
                let bytes: *const u8 = if data.is_empty() {
                    std::ptr::NonNull::dangling().as_ptr()
                } else {
                    data.as_ptr()
                };
                // SAFETY: the function pointer and user_data were registered together by
                // the C caller; both buffers outlive the call.
                unsafe {
                    callback(
                        user_data.0,
                        mesh_str::from_nul_terminated(&sender),
                        bytes,
                        data.len(),
                    )
                };
            }
            Event::PeerDiscovered { node_id, addr }
            | Event::PeerFailed { node_id, addr }
            | Event::PeerLeft { node_id, addr }
            | Event::PeerRecovered { node_id, addr } => {
                let Some((callback, user_data)) = registered.peer else {
                    return;
                };
                let kind = match event {
                    Event::PeerDiscovered { .. } => mesh_peer_event::Discovered,
                    Event::PeerFailed { .. } => mesh_peer_event::Failed,
                    Event::PeerLeft { .. } => mesh_peer_event::Left,
                    _ => mesh_peer_event::Recovered,
                };
                let node_id = nul_terminated(node_id.as_bytes());
                let addr = nul_terminated(addr.to_string().as_bytes());
                // SAFETY: the function pointer and user_data were registered together by
                // the C caller; both buffers outlive the call.
                unsafe {
                    callback(
                        user_data.0,
                        kind,
                        mesh_str::from_nul_terminated(&node_id),
                        mesh_str::from_nul_terminated(&addr),
                    )
                };
            }
        }
        drop(guard);
    }
}

/// Calls a C state change callback with one change.
///
/// # Safety
/// `callback` and `user_data` must have been registered together by the C caller.
pub(crate) unsafe fn call_state(
    callback: StateFn,
    user_data: UserData,
    key: &str,
    value: Option<&Value>,
    origin: ChangeOrigin,
) {
    let key = nul_terminated(key.as_bytes());
    let value = value.cloned().map(mesh_value_t::new);
    let value_ptr = value
        .as_ref()
        .map_or(std::ptr::null(), |v| v as *const mesh_value_t);
    let origin = match origin {
        ChangeOrigin::LocalSet => mesh_change_origin::Set,
        // An expiry is a delete: the key is gone (see `mesh_node_set_ttl`).
        ChangeOrigin::LocalDelete | ChangeOrigin::Expired => mesh_change_origin::Delete,
        ChangeOrigin::Sync => mesh_change_origin::Sync,
    };
    // SAFETY: the function pointer and user_data were registered together by the C
    // caller; the key buffer and the value outlive the call.
    unsafe {
        callback(
            user_data.0,
            mesh_str::from_nul_terminated(&key),
            value_ptr,
            origin,
        )
    };
}

/// Registers the state change callback, replacing any previous one; NULL removes it.
///
/// Callbacks run on the node's callback thread, one at a time and in the order the
/// changes happened, never on the network thread and never on the caller's thread.
/// A local write (`mesh_node_set_*`, `mesh_node_delete`) returns only once this
/// callback has run for it, as long as it is not made from inside a callback: the
/// callback must not wait for a lock the writing thread holds while it writes. A callback may call any function on this or
/// another node (get, set, delete, status, even `mesh_node_stop` and the callback
/// setters), but not `mesh_node_free` on its own node. It should return quickly: while it
/// runs, later events wait (the network does not). It must not unwind (no C++ exception
/// or `longjmp` out of it).
///
/// `user_data` is passed back untouched; it must stay valid, and be usable from the
/// callback thread, until the callback is replaced or removed, or the node is freed.
/// Replacing or removing waits for a call in progress on another thread to return.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_state_callback(
    node: *const mesh_node_t,
    callback: mesh_state_change_callback,
    user_data: *mut c_void,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Callbacks::update(&n.callbacks, &n.node, |r| {
            r.state = callback.map(|f| (f, UserData(user_data)));
        });
        Ok(())
    }
}

/// Registers the peer event callback, replacing any previous one; NULL removes it. Runs
/// on the callback thread under the same rules as `mesh_node_set_state_callback`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_peer_callback(
    node: *const mesh_node_t,
    callback: mesh_peer_event_callback,
    user_data: *mut c_void,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Callbacks::update(&n.callbacks, &n.node, |r| {
            r.peer = callback.map(|f| (f, UserData(user_data)));
        });
        Ok(())
    }
}

/// Registers the message callback, replacing any previous one; NULL removes it. It
/// receives every user message sent to this node (`mesh_node_send`,
/// `mesh_node_broadcast` on a peer), on the callback thread under the same rules as
/// `mesh_node_set_state_callback`: one callback at a time, in the order events happened,
/// so messages of one sender arrive in the order they were sent.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_message_callback(
    node: *const mesh_node_t,
    callback: mesh_message_callback,
    user_data: *mut c_void,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Callbacks::update(&n.callbacks, &n.node, |r| {
            r.message = callback.map(|f| (f, UserData(user_data)));
        });
        Ok(())
    }
}
