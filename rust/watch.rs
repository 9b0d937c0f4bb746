//! What a watcher thread shares with its caller, whichever way it watches (inotify in
//! [`crate::watcher`], listing in [`crate::poll`]).
//!
//! The thread feeds a [`Coalescer`] (the settle rule) and moves settled names into the shared
//! [`State`]; the caller takes them as a [`Batch`] through a [`Handle`]. A batch is *ready* when it
//! has settled names, a rescan, or when [`Handle::is_alive`] changed since the last batch taken;
//! the ready eventfd ([`Handle::ready_fd`]) is readable exactly then, so the caller can wait on it
//! together with its other descriptors, and [`Handle::take_batch`] takes the batch and rearms it.
//! A settled name that sees another event before it is taken goes back to the coalescer.
//!
//! The thread never panics on I/O errors: they are recorded ([`Handle::last_error`]) and turn into
//! `rescan` / not alive; were it to panic anyway, the handle reports it as not alive.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};

use crate::error::{CoreError, Result};
use crate::settle::{Coalescer, Kind};

/// One result of [`Handle::take_batch`] / [`Handle::wait_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Settled paths, oldest-ready first (absolute).
    pub paths: Vec<PathBuf>,
    /// Events may have been lost: the caller must rescan the directory.
    pub rescan: bool,
    /// Raw events (inotify) or changes seen (poll) since the previous batch.
    pub events: u64,
}

/// The state under the shared lock.
#[derive(Debug)]
pub struct State {
    /// Names seen but not settled yet (the settle rule).
    pub coal: Coalescer,
    /// Settled names not taken yet, oldest first (and as a set).
    settled: Vec<Vec<u8>>,
    settled_set: HashSet<Vec<u8>>,
    /// The caller must rescan.
    pub rescan: bool,
    /// Events or changes seen since the last batch taken.
    pub events: u64,
    /// The directory is watched (the watch is in place / the last listing worked).
    pub watching: bool,
    pub closed: bool,
    thread_dead: bool,
    pub last_error: Option<String>,
    /// `is_alive()` as of the last batch taken (a change makes a batch ready).
    seen_alive: bool,
    /// The ready eventfd has been written since the last batch taken.
    signalled: bool,
}

impl State {
    /// Empty: nothing seen, watching, not closed.
    pub fn new(debounce: Duration) -> State {
        State {
            coal: Coalescer::new(debounce),
            settled: Vec::new(),
            settled_set: HashSet::new(),
            rescan: false,
            events: 0,
            watching: true,
            closed: false,
            thread_dead: false,
            last_error: None,
            seen_alive: true,
            signalled: false,
        }
    }

    fn alive(&self) -> bool {
        !self.closed && !self.thread_dead && self.watching
    }

    /// Something for the caller: settled paths, a rescan, or a change of liveness.
    fn ready(&self) -> bool {
        !self.settled.is_empty() || self.rescan || self.alive() != self.seen_alive
    }

    fn unsettle(&mut self, name: &[u8]) {
        if self.settled_set.remove(name) {
            self.settled.retain(|n| n.as_slice() != name);
        }
    }

    /// Apply one event for a name (a settled name not taken yet goes back to the coalescer).
    pub fn apply(&mut self, name: &[u8], kind: Kind, now: Instant) {
        self.unsettle(name);
        self.coal.apply(name, kind, now);
    }

    /// Forget every name, settled or not, and ask for a rescan (directory gone or replaced).
    pub fn forget_all(&mut self) {
        self.coal.forget_all();
        self.settled.clear();
        self.settled_set.clear();
        self.rescan = true;
    }

    /// The watch is lost (`error` says why, if known): forget everything, rescan, not alive.
    pub fn lost(&mut self, error: Option<String>) {
        self.forget_all();
        self.watching = false;
        if error.is_some() {
            self.last_error = error;
        }
    }

    /// Move names that stayed quiet long enough to `settled`. Returns the next deadline of a
    /// still-armed name.
    pub fn settle(&mut self, now: Instant) -> Option<Instant> {
        let out = self.coal.settle(now);
        self.rescan |= out.rescan;
        for name in out.ready {
            if self.settled_set.insert(name.clone()) {
                self.settled.push(name);
            }
        }
        out.next
    }
}

/// Longest time [`Handle::close`] waits for the thread to end.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The state, the condition `wait_batch` (and `close`) sleeps on, and the two eventfds.
pub struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    /// Readable while a batch is ready (for the caller).
    ready: OwnedFd,
    /// Poked to wake the thread (close, debounce change).
    wake: OwnedFd,
}

fn new_eventfd(dir: &Path) -> Result<OwnedFd> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(|e| CoreError::rx(e, "eventfd", dir))
}

fn poke(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(fd.as_fd(), &mut buf);
}

impl Shared {
    /// The state (a panic elsewhere never makes it unusable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After the thread changed the state: make the ready descriptor readable and wake
    /// `wait_batch` when a batch is ready.
    pub fn publish(&self, mut st: MutexGuard<'_, State>) {
        let ready = st.ready();
        if ready && !st.signalled {
            poke(&self.ready);
            st.signalled = true;
        }
        let wake_waiters = !st.settled.is_empty() || st.rescan || st.closed;
        drop(st);
        if ready && wake_waiters {
            self.cond.notify_all();
        }
    }

    /// The descriptor the thread waits on besides its own (readable after a poke).
    pub fn wake_fd(&self) -> &OwnedFd {
        &self.wake
    }

    /// Consume the pokes the thread saw.
    pub fn drain_wake(&self) {
        drain(&self.wake);
    }
}

/// The caller's side of a watcher: see the module documentation.
pub struct Handle {
    dir: PathBuf,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    /// Start `body` on a thread named `name`, sharing state for `dir` with the new handle.
    pub fn start<F>(dir: PathBuf, debounce: Duration, name: &str, body: F) -> Result<Handle>
    where
        F: FnOnce(Arc<Shared>) + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(debounce)),
            cond: Condvar::new(),
            ready: new_eventfd(&dir)?,
            wake: new_eventfd(&dir)?,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let s = Arc::clone(&thread_shared);
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(s)));
                let mut st = thread_shared.lock();
                if ok.is_err() {
                    st.last_error = Some("watcher thread panicked".into());
                    st.rescan = true;
                }
                st.thread_dead = true;
                st.watching = false;
                thread_shared.publish(st);
                thread_shared.cond.notify_all();
            })
            .map_err(|e| CoreError::io(&e, "spawn watcher thread", &dir))?;
        Ok(Handle {
            dir,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The watched directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn take(&self, st: &mut State) -> Batch {
        let names = std::mem::take(&mut st.settled);
        st.settled_set.clear();
        let b = Batch {
            paths: names
                .iter()
                .map(|n| self.dir.join(OsStr::from_bytes(n)))
                .collect(),
            rescan: std::mem::take(&mut st.rescan),
            events: std::mem::take(&mut st.events),
        };
        st.seen_alive = st.alive();
        if st.signalled {
            drain(&self.shared.ready);
            st.signalled = false;
        }
        b
    }

    /// The eventfd that is readable while a batch is ready; open until the handle is dropped.
    pub fn ready_fd(&self) -> RawFd {
        self.shared.ready.as_raw_fd()
    }

    /// Wait up to `max_wait` for settled paths or a rescan. `Some(batch)` when there is one,
    /// `None` on timeout (nothing taken), `Err` (EBADF) when closed.
    pub fn wait_batch(&self, max_wait: Duration) -> Result<Option<Batch>> {
        let deadline = Instant::now() + max_wait;
        let mut st = self.shared.lock();
        loop {
            if st.closed {
                return Err(CoreError::os(libc::EBADF, "watcher is closed", &self.dir));
            }
            if !st.settled.is_empty() || st.rescan {
                return Ok(Some(self.take(&mut st)));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Take whatever there is now (possibly an empty batch); resets the event count and rearms
    /// the ready descriptor.
    pub fn take_batch(&self) -> Batch {
        let mut st = self.shared.lock();
        self.take(&mut st)
    }

    /// Paths seen changed that have not settled, plus settled ones not yet taken.
    pub fn pending(&self) -> Vec<PathBuf> {
        let st = self.shared.lock();
        st.settled
            .iter()
            .cloned()
            .chain(st.coal.pending())
            .map(|n| self.dir.join(OsStr::from_bytes(&n)))
            .collect()
    }

    /// Change the quiet period.
    pub fn set_debounce(&self, debounce: Duration) {
        self.shared.lock().coal.set_debounce(debounce);
        poke(&self.shared.wake);
    }

    /// False once the directory is not watched (lost, missing), the thread died, or closed.
    pub fn is_alive(&self) -> bool {
        self.shared.lock().alive()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// The last I/O error the thread recorded, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Stop the thread and wait for it (at most [`CLOSE_WAIT`]); idempotent. The ready
    /// descriptor stays open (and readable).
    pub fn close(&self) {
        self.close_within(CLOSE_WAIT);
    }

    /// [`Handle::close`] with a given longest wait: a thread still busy then (a listing stuck on
    /// an unresponsive network filesystem) is left to end on its own when the call returns.
    pub fn close_within(&self, wait: Duration) {
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.publish(st);
        self.shared.cond.notify_all();
        poke(&self.shared.wake);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(h) = handle else { return };
        let deadline = Instant::now() + wait;
        let mut st = self.shared.lock();
        while !st.thread_dead {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return; // `h` is dropped: the thread is detached and ends by itself
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        drop(st);
        let _ = h.join();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_names_go_back_on_a_new_event_and_liveness_makes_a_batch() {
        let d = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = Handle::start(d.path().to_path_buf(), Duration::ZERO, "t", move |shared| {
            let t0 = Instant::now();
            let mut st = shared.lock();
            st.apply(b"a", Kind::CloseWrite, t0);
            st.apply(b"b", Kind::CloseWrite, t0);
            st.settle(t0);
            st.apply(b"a", Kind::Modified, t0); // written again before taken
            shared.publish(st);
            let _ = rx.recv();
        })
        .unwrap();
        let b = h.wait_batch(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(b.paths, vec![d.path().join("b")]);
        assert_eq!(h.pending(), vec![d.path().join("a")]);
        assert!(h.is_alive());
        tx.send(()).unwrap(); // the thread ends: not alive, a batch is ready
        let end = Instant::now() + Duration::from_secs(5);
        while h.is_alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!h.is_alive());
        assert_eq!(h.take_batch(), Batch::default());
        h.close();
        assert_eq!(h.wait_batch(Duration::ZERO).unwrap_err().errno, libc::EBADF);
    }

    #[test]
    fn close_does_not_wait_forever_for_a_stuck_thread() {
        let d = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = Handle::start(d.path().to_path_buf(), Duration::ZERO, "t", move |_| {
            let _ = rx.recv_timeout(Duration::from_secs(30)); // e.g. a hung NFS listing
        })
        .unwrap();
        h.close_within(Duration::from_millis(50));
        assert!(!h.is_alive() && h.is_closed());
        h.close(); // idempotent: nothing left to wait for
        drop(tx); // the stuck thread ends by itself
    }

    #[test]
    fn a_panicking_thread_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let h = Handle::start(d.path().to_path_buf(), Duration::ZERO, "t", |_| {
            panic!("boom");
        })
        .unwrap();
        let b = h.wait_batch(Duration::from_secs(5)).unwrap().unwrap();
        assert!(b.rescan);
        assert!(!h.is_alive());
        assert_eq!(h.last_error().as_deref(), Some("watcher thread panicked"));
    }
}
