//! Inotify watcher of one directory that hands out names once they settled.
//!
//! A background thread reads inotify events, translates each into a [`Kind`]
//! (`IN_CLOSE_WRITE`, `IN_MOVED_TO`, `IN_MODIFY`/`IN_CREATE`, `IN_MOVED_FROM`, `IN_DELETE`, queue
//! overflow) and feeds the [`Coalescer`], which owns the settle rule. Settled names wait in the
//! shared state until the caller takes them ([`Watcher::take_batch`], [`Watcher::wait_batch`]);
//! a settled name that sees another event before it is taken goes back to the coalescer.
//! Overflow, a lost watch or a replaced directory set the `rescan` flag; a lost watch is re-added
//! (every 100 ms) as soon as the directory exists again.
//!
//! The watcher is dumb about names: every entry of the directory but a sub-directory is tracked
//! (hidden and temp names too); the caller decides which names are intents.
//!
//! [`Watcher::ready_fd`] is an eventfd that is readable while a batch is ready (settled paths, a
//! rescan, or a change of [`Watcher::is_alive`] since the last batch taken), so the caller can wait
//! on it together with its other descriptors; [`Watcher::take_batch`] takes the batch and rearms it.
//!
//! The thread never panics on I/O errors: they are recorded ([`Watcher::last_error`]) and turn
//! into `rescan` / not alive.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::ErrorKind as IoKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::{statat, AtFlags, CWD};

use crate::error::{CoreError, Result};
use crate::settle::{Coalescer, Kind};

/// How often the thread retries a lost watch.
const RETRY_LOST: Duration = Duration::from_millis(100);
/// How often the thread checks that the path still names the watched directory.
const CHECK_IDENTITY: Duration = Duration::from_secs(1);
/// Inotify read buffer.
const EVENT_BUF: usize = 64 * 1024;

fn watch_mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MODIFY
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

/// One result of [`Watcher::wait_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Settled paths, oldest-ready first (absolute).
    pub paths: Vec<PathBuf>,
    /// Events may have been lost: the caller must rescan the directory.
    pub rescan: bool,
    /// Raw inotify events consumed since the previous batch.
    pub events: u64,
}

#[derive(Debug)]
struct State {
    /// Names seen but not settled yet (the settle rule).
    coal: Coalescer,
    /// Settled names not taken yet, oldest first (and as a set).
    settled: Vec<Vec<u8>>,
    settled_set: HashSet<Vec<u8>>,
    rescan: bool,
    events: u64,
    /// The watch is in place.
    watching: bool,
    closed: bool,
    thread_dead: bool,
    last_error: Option<String>,
    /// `is_alive()` as of the last batch taken (a change makes a batch ready).
    seen_alive: bool,
    /// The ready eventfd has been written since the last batch taken.
    signalled: bool,
}

impl State {
    fn alive(&self) -> bool {
        !self.closed && !self.thread_dead && self.watching
    }

    /// Something for the caller: settled paths, a rescan, or a change of liveness.
    fn ready(&self) -> bool {
        !self.settled.is_empty() || self.rescan || self.alive() != self.seen_alive
    }

    /// Make `fd` readable when a batch is ready (once until the next take).
    fn signal(&mut self, fd: &OwnedFd) {
        if self.ready() && !self.signalled {
            poke(fd);
            self.signalled = true;
        }
    }

    fn unsettle(&mut self, name: &[u8]) {
        if self.settled_set.remove(name) {
            self.settled.retain(|n| n.as_slice() != name);
        }
    }

    fn forget_all(&mut self) {
        self.coal.forget_all();
        self.settled.clear();
        self.settled_set.clear();
    }

    /// Move names that stayed quiet long enough to `settled`. Returns whether any settled or a
    /// rescan was asked, and the next deadline of a still-armed name.
    fn settle(&mut self, now: Instant) -> (bool, Option<Instant>) {
        let out = self.coal.settle(now);
        let changed = !out.ready.is_empty() || out.rescan;
        self.rescan |= out.rescan;
        for name in out.ready {
            if self.settled_set.insert(name.clone()) {
                self.settled.push(name);
            }
        }
        (changed, out.next)
    }

    /// Apply one event for a name: a settled name not taken yet goes back to the coalescer.
    fn apply(&mut self, name: &[u8], kind: Kind, now: Instant) {
        self.unsettle(name);
        self.coal.apply(name, kind, now);
    }
}

/// The settle rule's reading of one inotify event (None: not about a name's content).
fn kind_of(mask: EventMask) -> Option<Kind> {
    if mask.contains(EventMask::DELETE) {
        Some(Kind::Deleted)
    } else if mask.contains(EventMask::MOVED_FROM) {
        Some(Kind::MovedOut)
    } else if mask.contains(EventMask::CLOSE_WRITE) {
        Some(Kind::CloseWrite)
    } else if mask.contains(EventMask::MOVED_TO) {
        Some(Kind::MovedIn)
    } else if mask.intersects(EventMask::MODIFY | EventMask::CREATE) {
        Some(Kind::Modified)
    } else {
        None
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A watcher of one directory; see the module documentation.
pub struct Watcher {
    dir: PathBuf,
    shared: Arc<Shared>,
    wake: Arc<OwnedFd>,
    ready: Arc<OwnedFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    statat(CWD, dir, AtFlags::empty())
        .ok()
        .map(|st| (st.st_dev, st.st_ino))
}

fn poke(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

impl Watcher {
    /// Start watching every name in `dir` (but sub-directories).
    pub fn new(dir: &Path, debounce: Duration) -> Result<Watcher> {
        let dir = std::path::absolute(dir).map_err(|e| CoreError::io(&e, "absolute path", dir))?;
        let inotify = Inotify::init().map_err(|e| CoreError::io(&e, "inotify_init", &dir))?;
        let wd = inotify
            .watches()
            .add(&dir, watch_mask())
            .map_err(|e| CoreError::io(&e, "inotify_add_watch", &dir))?;
        let ident = dir_identity(&dir);
        let new_eventfd = || {
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map(Arc::new)
                .map_err(|e| CoreError::rx(e, "eventfd", &dir))
        };
        let wake = new_eventfd()?;
        let ready = new_eventfd()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
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
            }),
            cond: Condvar::new(),
        });
        let mut worker = Worker {
            dir: dir.clone(),
            inotify,
            wd: Some(wd),
            ident,
            shared: Arc::clone(&shared),
            wake: Arc::clone(&wake),
            ready: Arc::clone(&ready),
        };
        let thread_shared = Arc::clone(&shared);
        let thread_ready = Arc::clone(&ready);
        let handle = std::thread::Builder::new()
            .name("cl-watcher".into())
            .spawn(move || {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
                let mut st = thread_shared.lock();
                if ok.is_err() {
                    st.last_error = Some("watcher thread panicked".into());
                    st.rescan = true;
                }
                st.thread_dead = true;
                st.watching = false;
                st.signal(&thread_ready);
                drop(st);
                thread_shared.cond.notify_all();
            })
            .map_err(|e| CoreError::io(&e, "spawn watcher thread", &dir))?;
        Ok(Watcher {
            dir,
            shared,
            wake,
            ready,
            thread: Mutex::new(Some(handle)),
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
            rescan: st.rescan,
            events: st.events,
        };
        st.rescan = false;
        st.events = 0;
        st.seen_alive = st.alive();
        if st.signalled {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(self.ready.as_fd(), &mut buf);
            st.signalled = false;
        }
        b
    }

    /// The eventfd that is readable while a batch is ready (see the module documentation).
    /// It stays open until the watcher is dropped.
    pub fn ready_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
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

    /// Paths seen modified that have not settled, plus settled ones not yet taken.
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
        poke(&self.wake);
    }

    /// False once the watch is lost and could not be re-added, the thread died, or closed.
    pub fn is_alive(&self) -> bool {
        let st = self.shared.lock();
        !st.closed && !st.thread_dead && st.watching
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// The last I/O error the thread recorded, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Stop the thread and close the inotify descriptor; idempotent.
    pub fn close(&self) {
        {
            let mut st = self.shared.lock();
            st.closed = true;
            st.signal(&self.ready);
        }
        self.shared.cond.notify_all();
        poke(&self.wake);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// The background thread's side.
struct Worker {
    dir: PathBuf,
    inotify: Inotify,
    wd: Option<WatchDescriptor>,
    ident: Option<(u64, u64)>,
    shared: Arc<Shared>,
    wake: Arc<OwnedFd>,
    ready: Arc<OwnedFd>,
}

impl Worker {
    fn record_error(&self, st: &mut State, msg: String) {
        st.last_error = Some(msg);
        st.rescan = true;
    }

    /// The watch is gone (directory deleted, moved, replaced, unmounted).
    fn lost(&mut self, st: &mut State) {
        if let Some(wd) = self.wd.take() {
            // Ignore errors: the kernel may have removed it already.
            let _ = self.inotify.watches().remove(wd);
        }
        self.ident = None;
        st.forget_all();
        st.rescan = true;
        st.watching = false;
    }

    /// Try to (re-)add the watch on the path; on success the caller must rescan.
    fn try_readd(&mut self, st: &mut State) {
        match self.inotify.watches().add(&self.dir, watch_mask()) {
            Ok(wd) => {
                self.wd = Some(wd);
                self.ident = dir_identity(&self.dir);
                st.watching = true;
                st.rescan = true;
            }
            Err(e) => {
                st.watching = false;
                st.last_error = Some(format!("re-adding watch on {}: {e}", self.dir.display()));
            }
        }
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; EVENT_BUF];
        let mut next_check = Instant::now() + CHECK_IDENTITY;
        let mut next_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wait = if self.wd.is_some() {
                next_check.saturating_duration_since(now)
            } else {
                RETRY_LOST
            };
            if let Some(d) = next_deadline {
                wait = wait.min(d.saturating_duration_since(now));
            }
            let ts = Timespec::try_from(wait).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let (ino_ready, wake_ready) = {
                let mut fds = [
                    PollFd::new(&self.inotify, PollFlags::IN),
                    PollFd::new(&*self.wake, PollFlags::IN),
                ];
                match poll(&mut fds, Some(&ts)) {
                    Ok(_) => (!fds[0].revents().is_empty(), !fds[1].revents().is_empty()),
                    Err(rustix::io::Errno::INTR) => (false, false),
                    Err(e) => {
                        let mut st = self.shared.lock();
                        self.record_error(&mut st, format!("poll: {e}"));
                        drop(st);
                        std::thread::sleep(Duration::from_millis(10));
                        (true, true)
                    }
                }
            };
            if wake_ready {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(self.wake.as_fd(), &mut b);
            }
            let mut changed = false;
            if ino_ready {
                changed |= self.read_events(&mut buf);
            }
            let shared = Arc::clone(&self.shared);
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            let now = Instant::now();
            if self.wd.is_some() && now >= next_check {
                next_check = now + CHECK_IDENTITY;
                let ident = dir_identity(&self.dir);
                if ident.is_none() || ident != self.ident {
                    self.lost(&mut st);
                    changed = true;
                }
            }
            if self.wd.is_none() {
                let before = st.watching;
                self.try_readd(&mut st);
                changed |= st.watching != before || st.rescan;
                if st.watching {
                    next_check = now + CHECK_IDENTITY;
                }
            }
            let (settled, next) = st.settle(now);
            next_deadline = next;
            changed |= settled;
            let notify = changed && (!st.settled.is_empty() || st.rescan);
            st.signal(&self.ready);
            drop(st);
            if notify {
                self.shared.cond.notify_all();
            }
        }
    }

    /// Drain the inotify queue; returns whether the rescan flag or the watch state changed.
    fn read_events(&mut self, buf: &mut [u8]) -> bool {
        let mut changed = false;
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
                    let mut st = self.shared.lock();
                    self.record_error(&mut st, format!("reading inotify events: {e}"));
                    return true;
                }
            };
            let now = Instant::now();
            // Collect first: handling may need `self.inotify` mutably.
            let batch: Vec<(WatchDescriptor, EventMask, Option<Vec<u8>>)> = events
                .map(|ev| (ev.wd, ev.mask, ev.name.map(|n| n.as_bytes().to_vec())))
                .collect();
            let shared = Arc::clone(&self.shared);
            let mut st = shared.lock();
            for (wd, mask, name) in batch {
                st.events += 1;
                if mask.contains(EventMask::Q_OVERFLOW) {
                    // Events were lost: a name seen written but not closed may never see its
                    // close. Forget those (the caller's rescan checks mtimes); keep armed ones.
                    st.coal.apply(b"", Kind::Overflow, now);
                    st.rescan = true;
                    changed = true;
                    continue;
                }
                if self.wd.as_ref() != Some(&wd) {
                    continue; // a stale event of a watch we dropped
                }
                if mask.intersects(
                    EventMask::DELETE_SELF
                        | EventMask::MOVE_SELF
                        | EventMask::IGNORED
                        | EventMask::UNMOUNT,
                ) {
                    self.lost(&mut st);
                    changed = true;
                    continue;
                }
                if mask.contains(EventMask::ISDIR) {
                    continue;
                }
                match name {
                    Some(n) if n != b"." && n != b".." => {
                        if let Some(kind) = kind_of(mask) {
                            st.apply(&n, kind, now);
                        }
                    }
                    _ => {}
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn readable(w: &Watcher) -> bool {
        // SAFETY: the descriptor stays open as long as `w`.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(w.ready_fd()) };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&ts)).unwrap() == 1
    }

    fn wait_readable(w: &Watcher, ms: u64) -> bool {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            if readable(w) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn ready_fd_follows_batches_and_liveness() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("handoff");
        fs::create_dir(&d).unwrap();
        let w = Watcher::new(&d, Duration::from_millis(30)).unwrap();
        assert!(!readable(&w));
        assert_eq!(w.take_batch(), Batch::default());
        fs::write(d.join("a"), "x").unwrap();
        assert!(wait_readable(&w, 3000));
        assert!(readable(&w)); // level-triggered until taken
        let b = w.take_batch();
        assert_eq!(b.paths, vec![d.join("a")]);
        assert!(!readable(&w));
        fs::write(d.join("b"), "x").unwrap();
        assert!(wait_readable(&w, 3000));
        assert_eq!(w.take_batch().paths, vec![d.join("b")]);
        // the directory goes: rescan, then not alive; each makes the descriptor readable
        fs::remove_file(d.join("a")).unwrap();
        fs::remove_file(d.join("b")).unwrap();
        fs::remove_dir(&d).unwrap();
        assert!(wait_readable(&w, 3000));
        assert!(w.take_batch().rescan);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!w.is_alive());
        if readable(&w) {
            w.take_batch();
        }
        assert!(!readable(&w));
        fs::create_dir(&d).unwrap();
        assert!(wait_readable(&w, 3000));
        assert!(w.is_alive());
        assert!(w.take_batch().rescan);
        // close: not alive any more, readable; the descriptor stays valid
        w.close();
        assert!(readable(&w));
    }

    fn wait(w: &Watcher, ms: u64) -> Batch {
        w.wait_batch(Duration::from_millis(ms))
            .unwrap()
            .unwrap_or_default()
    }

    #[test]
    fn coalesces_burst_into_one() {
        let d = tempfile::tempdir().unwrap();
        let w = Watcher::new(d.path(), Duration::from_millis(50)).unwrap();
        let p = d.path().join("intent-a.json");
        for i in 0..50 {
            fs::write(&p, format!("{i}")).unwrap();
        }
        fs::write(d.path().join("other.txt"), "x").unwrap();
        fs::write(d.path().join(".intent-b.json"), "x").unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let b = wait(&w, 3000);
        // every name but the sub-directory, oldest first: the caller filters
        assert_eq!(
            b.paths,
            vec![
                p.clone(),
                d.path().join("other.txt"),
                d.path().join(".intent-b.json")
            ]
        );
        assert!(!b.rescan);
        assert!(b.events >= 50, "{}", b.events);
        assert!(!readable(&w));
        assert!(w.pending().is_empty());
        assert_eq!(w.wait_batch(Duration::from_millis(200)).unwrap(), None);
        assert!(w.is_alive());
        w.close();
        w.close();
        assert!(!w.is_alive());
        assert_eq!(w.wait_batch(Duration::ZERO).unwrap_err().errno, libc::EBADF);
    }

    #[test]
    fn deleted_before_settling_is_dropped_and_open_writer_waits() {
        let d = tempfile::tempdir().unwrap();
        let w = Watcher::new(d.path(), Duration::from_millis(150)).unwrap();
        let gone = d.path().join("intent-gone.json");
        fs::write(&gone, "x").unwrap();
        fs::remove_file(&gone).unwrap();
        let held = d.path().join("intent-held.json");
        let mut f = fs::File::create(&held).unwrap();
        for _ in 0..3 {
            f.write_all(b"part").unwrap();
            std::thread::sleep(Duration::from_millis(250));
            assert_eq!(w.pending(), vec![held.clone()]);
        }
        assert_eq!(w.wait_batch(Duration::from_millis(10)).unwrap(), None);
        drop(f);
        let b = wait(&w, 3000);
        assert_eq!(b.paths, vec![held]);
    }

    #[test]
    fn rename_into_place_and_settled_order() {
        let d = tempfile::tempdir().unwrap();
        let w = Watcher::new(d.path(), Duration::from_millis(100)).unwrap();
        let tmp = d.path().join(".intent-r.json.tmp");
        fs::write(&tmp, "x").unwrap();
        fs::rename(&tmp, d.path().join("intent-r.json")).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs::write(d.path().join("intent-s.json"), "y").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let b = wait(&w, 3000);
        assert_eq!(
            b.paths,
            vec![
                d.path().join("intent-r.json"),
                d.path().join("intent-s.json")
            ]
        );
        // moved away before being taken: dropped
        w.set_debounce(Duration::from_millis(30));
        fs::write(d.path().join("intent-t.json"), "t").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        fs::create_dir(d.path().join("done")).unwrap();
        fs::rename(
            d.path().join("intent-t.json"),
            d.path().join("done").join("intent-t.json"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.pending().is_empty());
        assert_eq!(w.take_batch().paths, Vec::<PathBuf>::new());
    }

    #[test]
    fn directory_recreated_sets_rescan() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("handoff");
        fs::create_dir(&d).unwrap();
        let w = Watcher::new(&d, Duration::from_millis(30)).unwrap();
        fs::remove_dir(&d).unwrap();
        let b = wait(&w, 2000);
        assert!(b.rescan);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!w.is_alive());
        assert!(w.last_error().is_some());
        fs::create_dir(&d).unwrap();
        let b = wait(&w, 2000);
        assert!(b.rescan);
        assert!(w.is_alive());
        fs::write(d.join("intent-new.json"), "n").unwrap();
        let b = wait(&w, 2000);
        assert_eq!(b.paths, vec![d.join("intent-new.json")]);
    }

    #[test]
    fn errors() {
        let e = Watcher::new(Path::new("/nonexistent/dir"), Duration::ZERO)
            .err()
            .unwrap();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("/nonexistent/dir"));
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = Watcher::new(f.path(), Duration::ZERO).err().unwrap();
        assert_eq!(e.errno, libc::ENOTDIR);
    }

    #[test]
    fn event_kinds() {
        assert_eq!(kind_of(EventMask::CREATE), Some(Kind::Modified));
        assert_eq!(kind_of(EventMask::MODIFY), Some(Kind::Modified));
        assert_eq!(kind_of(EventMask::CLOSE_WRITE), Some(Kind::CloseWrite));
        assert_eq!(kind_of(EventMask::MOVED_TO), Some(Kind::MovedIn));
        assert_eq!(kind_of(EventMask::MOVED_FROM), Some(Kind::MovedOut));
        assert_eq!(kind_of(EventMask::DELETE), Some(Kind::Deleted));
        assert_eq!(kind_of(EventMask::ATTRIB), None);
    }
}
