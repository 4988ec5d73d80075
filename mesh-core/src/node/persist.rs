//! The runtime's store thread: commits what the engine changed, in batches.
//!
//! One thread owns the [`Store`]. It wakes every `flush_interval`, or at once when a
//! [`Durability::Sync`] writer waits, takes everything the engine changed since the last
//! batch (under the engine lock, briefly) and commits it in one transaction. Writers
//! waiting for a sync write share that commit (group commit): each knows the number of
//! the batch its write is in, and returns once a batch at least that number is durable.
//!
//! With [`Durability::Batched`], a write returns at once while the batch before its own
//! is durable or still within its `flush_interval` of commit time; past that, it waits
//! for that batch. So writers and the commit run side by side, and a store that cannot
//! keep up slows writers down rather than falling behind without bound: the uncommitted
//! tail is the batch being committed and at most one interval of writes after it.
//!
//! A failed commit (disk full, I/O error) keeps its batch and retries it, with whatever
//! came after, every half second. Until one succeeds, local writes are refused with
//! [`Error::Storage`]; reads, merges from peers and replication go on.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{now_from, Shared};
use crate::error::{Error, Result, StorageErrorKind};
use crate::store::{storage_error, Durability, OpenReport, StorageStatus, Store, StoreBatch};

/// Pause between retries of a failed commit.
const RETRY: Duration = Duration::from_millis(500);

pub(super) struct Persist {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the store thread.
    wake: Condvar,
    /// Wakes writers waiting for a commit.
    done: Condvar,
    durability: Durability,
    flush_interval: Duration,
    path: std::path::PathBuf,
    report: OpenReport,
}

#[derive(Default)]
struct State {
    /// The highest batch number a writer waits for.
    requested: u64,
    /// Every batch up to this number is durable.
    committed: u64,
    /// Every batch up to this number was tried.
    attempted: u64,
    /// When the commit under way began to take its batch; `None` between commits.
    commit_started: Option<Instant>,
    /// Why the last commit failed; cleared by the next success.
    error: Option<(StorageErrorKind, String)>,
    /// `stop` asked for a last commit; the thread ends after it.
    stop: bool,
    /// The thread has ended: nothing more becomes durable.
    closed: bool,
    pending: bool,
    commits: u64,
    keys_written: u64,
    failed_commits: u64,
    commit_total_us: u64,
    commit_max_us: u64,
}

impl Persist {
    /// Starts the store thread for `store`.
    pub(super) fn start(
        shared: &Arc<Shared>,
        store: Store,
        durability: Durability,
        flush_interval: Duration,
        report: OpenReport,
    ) -> Result<Persist> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            durability,
            flush_interval,
            path: store.path().to_owned(),
            report,
        });
        let thread = {
            let inner = Arc::clone(&inner);
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("mesh-s:{}", super::short(&shared.node_id)))
                .spawn(move || store_loop(&shared, &inner, store))?
        };
        Ok(Persist {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Refuses a local write while the store cannot take it (a failed commit not yet
    /// retried successfully, or the node stopped).
    pub(super) fn check_writable(&self) -> Result<()> {
        let state = self.inner.state.lock();
        if state.closed || state.stop {
            return Err(Error::Stopped);
        }
        match &state.error {
            Some((kind, reason)) => Err(storage_error(
                &self.inner.path,
                *kind,
                format!("writes are refused until the store accepts commits again: {reason}"),
            )),
            None => Ok(()),
        }
    }

    /// Waits until a write in batch `ticket` may return.
    ///
    /// [`Durability::Sync`]: until that batch is durable. [`Durability::Batched`]: see
    /// [`batched_may_return`]; a crash loses at most the batch being committed and the
    /// open one, which holds at most one `flush_interval` of writes.
    pub(super) fn wait(&self, ticket: u64) -> Result<()> {
        let needed = match self.inner.durability {
            Durability::Sync => ticket,
            Durability::Batched => ticket - 1,
        };
        let mut state = self.inner.state.lock();
        if self.inner.durability == Durability::Sync && state.requested < ticket {
            state.requested = ticket;
            self.inner.wake.notify_one();
        }
        while state.committed < needed {
            if self.inner.durability == Durability::Batched
                && batched_may_return(&state, needed, self.inner.flush_interval, Instant::now())
            {
                return Ok(());
            }
            if state.attempted >= needed || state.closed {
                let (kind, reason) = state.error.clone().unwrap_or((
                    StorageErrorKind::Io,
                    "the store was closed before the write was committed".to_owned(),
                ));
                return Err(storage_error(
                    &self.inner.path,
                    kind,
                    format!("the write is applied in memory but not durable: {reason}"),
                ));
            }
            self.inner.done.wait(&mut state);
        }
        Ok(())
    }

    /// Commits everything still pending and ends the store thread, closing the store.
    pub(super) fn close(&self) {
        self.inner.state.lock().stop = true;
        self.inner.wake.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }

    pub(super) fn status(&self) -> StorageStatus {
        let state = self.inner.state.lock();
        StorageStatus {
            path: self.inner.path.display().to_string(),
            durability: self.inner.durability.as_str().to_owned(),
            loaded_entries: self.inner.report.loaded_entries,
            load_ms: self.inner.report.load_ms,
            discarded_stale: self.inner.report.discarded_stale,
            commits: state.commits,
            keys_written: state.keys_written,
            failed_commits: state.failed_commits,
            commit_mean_us: state
                .commit_total_us
                .checked_div(state.commits)
                .unwrap_or(0),
            commit_max_us: state.commit_max_us,
            pending: state.pending,
            error: state.error.as_ref().map(|(_, reason)| reason.clone()),
        }
    }
}

fn store_loop(shared: &Shared, inner: &Inner, mut store: Store) {
    let mut pending: Option<StoreBatch> = None;
    // Batches are taken every `flush_interval` from the last take, not from the end of
    // the last commit: a slow commit must not stretch the promised interval.
    let mut last_take = Instant::now();
    loop {
        let stop = {
            let mut state = inner.state.lock();
            let pause = if state.error.is_some() {
                RETRY
            } else {
                inner.flush_interval
            };
            let due = last_take + pause;
            while !state.stop && state.requested <= state.attempted {
                if inner.wake.wait_until(&mut state, due).timed_out() {
                    break;
                }
            }
            state.stop
        };
        last_take = Instant::now();
        // Set before the take, so a writer whose change lands after it sees when this
        // commit began.
        inner.state.lock().commit_started = Some(last_take);
        let now = now_from(shared.epoch);
        let (batch, taken) = {
            let mut engine = shared.engine.lock();
            (engine.take_store_batch(now), engine.store_batches_taken())
        };
        if let Some(batch) = batch {
            match pending.as_mut() {
                Some(waiting) => waiting.absorb(batch),
                None => pending = Some(batch),
            }
        }
        let outcome = pending.as_ref().map(|batch| {
            let started = Instant::now();
            (store.commit(batch), started.elapsed(), batch.len() as u64)
        });
        let mut state = inner.state.lock();
        state.attempted = taken;
        state.commit_started = None;
        match outcome {
            None => state.committed = taken,
            Some((Ok(()), took, keys)) => {
                if state.error.take().is_some() {
                    log::info!(
                        "{}: {} accepts commits again",
                        shared.node_id,
                        store.path().display()
                    );
                }
                state.committed = taken;
                state.commits += 1;
                state.keys_written += keys;
                let us = took.as_micros() as u64;
                state.commit_total_us += us;
                state.commit_max_us = state.commit_max_us.max(us);
                pending = None;
            }
            Some((Err(e), _, _)) => {
                let (kind, reason) = match &e {
                    Error::Storage { kind, reason, .. } => (*kind, reason.clone()),
                    other => (StorageErrorKind::Io, other.to_string()),
                };
                if state.error.is_none() {
                    log::error!(
                        "{}: commit to {} failed, local writes refused until it succeeds: {e}",
                        shared.node_id,
                        store.path().display()
                    );
                }
                state.failed_commits += 1;
                state.error = Some((kind, reason));
            }
        }
        state.pending = pending.is_some();
        if stop {
            state.closed = true;
            if pending.is_some() {
                log::error!(
                    "{}: stopping with changes not written to {}",
                    shared.node_id,
                    store.path().display()
                );
            }
        }
        inner.done.notify_all();
        if stop {
            return;
        }
    }
}

/// Whether a [`Durability::Batched`] write may return although batch `needed`, the one
/// before its own, is not durable yet: it may while that batch is the one being
/// committed, the commit has had less than `flush_interval`, and the store accepts
/// commits. Waiting for every commit would leave the writers idle while it runs and halve
/// their rate; never waiting would let the uncommitted tail grow without bound on a disk
/// slower than the writers.
fn batched_may_return(state: &State, needed: u64, flush_interval: Duration, now: Instant) -> bool {
    state.error.is_none()
        && !state.closed
        && needed == state.attempted + 1
        && state
            .commit_started
            .is_some_and(|started| now < started + flush_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(10);

    /// Batch 4 is being committed since `started`; batch 5 is open.
    fn committing_batch_4(started: Instant) -> State {
        State {
            committed: 3,
            attempted: 3,
            commit_started: Some(started),
            ..State::default()
        }
    }

    #[test]
    fn a_batched_write_returns_while_the_commit_before_it_is_on_time() {
        let t0 = Instant::now();
        let state = committing_batch_4(t0);
        assert!(batched_may_return(&state, 4, INTERVAL, t0));
        assert!(batched_may_return(&state, 4, INTERVAL, t0 + INTERVAL / 2));
    }

    #[test]
    fn a_batched_write_waits_once_the_commit_before_it_is_late() {
        let t0 = Instant::now();
        let state = committing_batch_4(t0);
        assert!(!batched_may_return(&state, 4, INTERVAL, t0 + INTERVAL));
        assert!(!batched_may_return(&state, 4, INTERVAL, t0 + 3 * INTERVAL));
    }

    #[test]
    fn a_batched_write_waits_when_an_older_batch_is_not_durable() {
        let t0 = Instant::now();
        // Batch 4 was tried and failed, and batch 5 is being committed: a write in batch 6
        // needs 5, but 4 is still not durable behind it.
        let mut state = committing_batch_4(t0);
        state.attempted = 4;
        state.error = Some((StorageErrorKind::Io, "no space".to_owned()));
        assert!(!batched_may_return(&state, 5, INTERVAL, t0));
        // Between commits nothing is on time.
        let idle = State {
            committed: 3,
            attempted: 3,
            ..State::default()
        };
        assert!(!batched_may_return(&idle, 4, INTERVAL, t0));
    }
}
