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

use std::ffi::OsStr;
use std::io::ErrorKind as IoKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{statat, AtFlags, FileType, CWD};

use crate::error::{CoreError, Result};
use crate::settle::Kind;
use crate::watch::{Handle, Shared, State};

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

/// The kind of an `IN_CREATE` of `name`: a regular file with one link is being written (a close
/// will follow); anything else arrived complete and sees no close: a symlink, FIFO, socket or
/// device (the caller files it as bad input) or a hard link.
fn created_kind(dir: &Path, name: &[u8]) -> Kind {
    let path = dir.join(OsStr::from_bytes(name));
    match statat(CWD, &path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => Kind::MovedIn,
        Ok(st) if st.st_nlink > 1 => Kind::MovedIn,
        _ => Kind::Modified, // a new file, or gone already (its IN_DELETE follows)
    }
}

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    statat(CWD, dir, AtFlags::empty())
        .ok()
        .map(|st| (st.st_dev, st.st_ino))
}

/// Start watching every name in `dir` (but sub-directories) with inotify.
pub fn start(dir: &Path, debounce: Duration) -> Result<Handle> {
    let dir = std::path::absolute(dir).map_err(|e| CoreError::io(&e, "absolute path", dir))?;
    let inotify = Inotify::init().map_err(|e| CoreError::io(&e, "inotify_init", &dir))?;
    let wd = inotify
        .watches()
        .add(&dir, watch_mask())
        .map_err(|e| CoreError::io(&e, "inotify_add_watch", &dir))?;
    let ident = dir_identity(&dir);
    let thread_dir = dir.clone();
    Handle::start(dir, debounce, "cl-watcher", move |shared| {
        let mut worker = Worker {
            dir: thread_dir,
            inotify,
            wd: Some(wd),
            ident,
            shared,
        };
        worker.run();
    })
}

/// The background thread's side.
struct Worker {
    dir: PathBuf,
    inotify: Inotify,
    wd: Option<WatchDescriptor>,
    ident: Option<(u64, u64)>,
    shared: Arc<Shared>,
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
        st.lost(None);
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
                    PollFd::new(self.shared.wake_fd(), PollFlags::IN),
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
                self.shared.drain_wake();
            }
            if ino_ready {
                self.read_events(&mut buf);
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
                }
            }
            if self.wd.is_none() {
                self.try_readd(&mut st);
                if st.watching {
                    next_check = now + CHECK_IDENTITY;
                }
            }
            next_deadline = st.settle(now);
            shared.publish(st);
        }
    }

    /// Drain the inotify queue into the state.
    fn read_events(&mut self, buf: &mut [u8]) {
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
                    let mut st = self.shared.lock();
                    self.record_error(&mut st, format!("reading inotify events: {e}"));
                    return;
                }
            };
            let now = Instant::now();
            // Collect first: handling may need `self.inotify` mutably. Read the kinds (which may
            // `lstat`) before taking the lock.
            let batch: Vec<(WatchDescriptor, EventMask, Option<Vec<u8>>)> = events
                .map(|ev| (ev.wd, ev.mask, ev.name.map(|n| n.as_bytes().to_vec())))
                .collect();
            let kinds: Vec<Option<Kind>> = batch
                .iter()
                .map(|(_, mask, name)| match name {
                    Some(n) if *mask == EventMask::CREATE => Some(created_kind(&self.dir, n)),
                    _ => kind_of(*mask),
                })
                .collect();
            let shared = Arc::clone(&self.shared);
            let mut st = shared.lock();
            for ((wd, mask, name), kind) in batch.into_iter().zip(kinds) {
                st.events += 1;
                if mask.contains(EventMask::Q_OVERFLOW) {
                    // Events were lost: a name seen written but not closed may never see its
                    // close. Forget those (the caller's rescan checks mtimes); keep armed ones.
                    st.coal.apply(b"", Kind::Overflow, now);
                    st.rescan = true;
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
                    continue;
                }
                if mask.contains(EventMask::ISDIR) {
                    continue;
                }
                match (name, kind) {
                    (Some(n), Some(kind)) if n != b"." && n != b".." => st.apply(&n, kind, now),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Batch;
    use std::fs;
    use std::io::Write;

    fn readable(w: &Handle) -> bool {
        // SAFETY: the descriptor stays open as long as `w`.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(w.ready_fd()) };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&ts)).unwrap() == 1
    }

    fn wait_readable(w: &Handle, ms: u64) -> bool {
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
        let w = start(&d, Duration::from_millis(30)).unwrap();
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

    /// Paths until there are `n` of them (or 5 s passed).
    fn collect_n(w: &Handle, n: usize) -> Vec<PathBuf> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < end {
            got.extend(wait(w, 100).paths);
        }
        got
    }

    fn wait(w: &Handle, ms: u64) -> Batch {
        w.wait_batch(Duration::from_millis(ms))
            .unwrap()
            .unwrap_or_default()
    }

    #[test]
    fn coalesces_burst_into_one() {
        let d = tempfile::tempdir().unwrap();
        let w = start(d.path(), Duration::from_millis(50)).unwrap();
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
        let w = start(d.path(), Duration::from_millis(150)).unwrap();
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
        let w = start(d.path(), Duration::from_millis(100)).unwrap();
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
        let w = start(&d, Duration::from_millis(30)).unwrap();
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
        let e = start(Path::new("/nonexistent/dir"), Duration::ZERO)
            .err()
            .unwrap();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("/nonexistent/dir"));
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = start(f.path(), Duration::ZERO).err().unwrap();
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

    #[test]
    fn created_without_a_close_still_settles() {
        let d = tempfile::tempdir().unwrap();
        let w = start(d.path(), Duration::from_millis(30)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("link")).unwrap();
        rustix::fs::mknodat(
            CWD,
            d.path().join("fifo"),
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fs::write(d.path().join("src"), "x").unwrap();
        let names = ["link", "fifo", "src"].map(|n| d.path().join(n));
        assert_eq!(collect_n(&w, 3), names.to_vec());
        fs::hard_link(d.path().join("src"), d.path().join("hard")).unwrap();
        assert_eq!(collect_n(&w, 1), vec![d.path().join("hard")]);
        assert!(w.pending().is_empty());
    }
}
