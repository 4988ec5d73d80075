//! How far the callback thread has got: lets a local write return only once the
//! application's callbacks have seen it, as the pure-Python prototype did (it ran
//! `on_state_change` inside `set`).
//!
//! Events are numbered in the order they are queued for the callback thread; the callback
//! thread publishes the number of the last one it has finished with. A writer notes the
//! number of its own event and waits for the callback thread to get there. Callbacks keep
//! running one at a time, in order, on that one thread.
//!
//! A callback thread never waits for itself or for another node's callback thread: a
//! write made from inside any callback returns at once (waiting there could close a
//! cycle of nodes each waiting for the other's callback to finish).

use std::cell::Cell;

use parking_lot::{Condvar, Mutex};

thread_local! {
    /// Whether the current thread is the callback thread of some node.
    static ON_CALLBACK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a node's callback thread, for the rest of its life.
pub(crate) fn mark_callback_thread() {
    ON_CALLBACK_THREAD.with(|flag| flag.set(true));
}

/// Whether the current thread is the callback thread of some node.
pub(crate) fn on_callback_thread() -> bool {
    ON_CALLBACK_THREAD.with(Cell::get)
}

/// Counts events queued and events the callback thread has finished with.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Number of the last event queued. Only changed while the event queue's sender is
    /// locked, so numbers follow the queue's order.
    queued: Mutex<u64>,
    /// Number of the last event the callback thread finished with; `u64::MAX` once the
    /// callback thread has ended (nothing queued will be delivered after that).
    delivered: Mutex<u64>,
    progress: Condvar,
}

impl Delivery {
    /// Records that one more event was queued; called in queue order.
    pub(crate) fn queued_one(&self) {
        *self.queued.lock() += 1;
    }

    /// The number of the last event queued so far.
    pub(crate) fn last_queued(&self) -> u64 {
        *self.queued.lock()
    }

    /// Records that the callback thread finished with the next event.
    pub(crate) fn delivered_one(&self) {
        let mut delivered = self.delivered.lock();
        *delivered = delivered.saturating_add(1);
        self.progress.notify_all();
    }

    /// Records that the callback thread has ended: nobody must wait for it any more.
    pub(crate) fn close(&self) {
        *self.delivered.lock() = u64::MAX;
        self.progress.notify_all();
    }

    /// Blocks until event number `seq` has been delivered, unless the current thread is
    /// a callback thread (see the module documentation).
    pub(crate) fn wait_for(&self, seq: u64) {
        if on_callback_thread() {
            return;
        }
        let mut delivered = self.delivered.lock();
        while *delivered < seq {
            self.progress.wait(&mut delivered);
        }
    }
}

/// Closes a [`Delivery`] when dropped.
pub(crate) struct CloseOnDrop<'a>(pub(crate) &'a Delivery);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    #[test]
    fn a_waiter_returns_once_its_event_is_delivered() {
        let delivery = Arc::new(Delivery::default());
        delivery.queued_one();
        delivery.queued_one();
        let target = delivery.last_queued();
        let worker = {
            let delivery = Arc::clone(&delivery);
            thread::spawn(move || {
                delivery.delivered_one();
                delivery.delivered_one();
            })
        };
        delivery.wait_for(target);
        assert_eq!(*delivery.delivered.lock(), 2);
        worker.join().unwrap();
    }

    #[test]
    fn a_closed_delivery_releases_waiters() {
        let delivery = Arc::new(Delivery::default());
        delivery.queued_one();
        let closer = {
            let delivery = Arc::clone(&delivery);
            thread::spawn(move || delivery.close())
        };
        delivery.wait_for(1);
        closer.join().unwrap();
    }

    #[test]
    fn a_callback_thread_never_waits() {
        let delivery = Delivery::default();
        delivery.queued_one();
        thread::scope(|s| {
            s.spawn(|| {
                mark_callback_thread();
                // Nothing will ever deliver event 1: returning proves it did not wait.
                delivery.wait_for(1);
            });
        });
        assert_eq!(*delivery.delivered.lock(), 0);
    }
}
