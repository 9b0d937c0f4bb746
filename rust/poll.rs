//! Poll watcher of one directory, for filesystems where inotify does not see other hosts'
//! writes (NFS, SMB, FUSE; see [`crate::fstype::is_network_fs`]).
//!
//! A background thread lists the directory once per interval (getdents, then `lstat` of each
//! entry, never following links) and compares each name's signature (inode, size, mtime in ns)
//! with the previous listing. A new or changed signature arms the name in the same
//! [`crate::settle::Coalescer`] the inotify watcher uses ([`Kind::MovedIn`]); a vanished name is
//! dropped ([`Kind::Deleted`]). The coalescer is asked only right after a listing, so a name is
//! handed out only once a listing saw it unchanged for the debounce period: a file still growing
//! between listings is never emitted. Sub-directories are not tracked. The first listing (and the
//! first after the directory came back or was replaced) is the baseline and emits nothing: it sets
//! `rescan` instead, as the caller lists the directory itself then. A missing or unreadable
//! directory makes the watcher not alive until a listing works again.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{fstat, open, statat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{CoreError, Result};
use crate::settle::Kind;
use crate::watch::{Handle, Shared, State};

/// What identifies one version of a file between two listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

/// One listing: the directory's (device, inode) and each non-directory entry's signature.
struct Listing {
    ident: (u64, u64),
    entries: HashMap<Vec<u8>, Signature>,
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CoreError::rx(e, "open directory", dir))
}

/// List `dir`: getdents, then `lstat` each entry. An entry gone meanwhile is left out.
fn list(dir: &Path) -> Result<Listing> {
    let fd = open_dir(dir)?;
    let st = fstat(&fd).map_err(|e| CoreError::rx(e, "fstat directory", dir))?;
    let mut entries = HashMap::new();
    let reader = Dir::read_from(&fd).map_err(|e| CoreError::rx(e, "read directory", dir))?;
    for entry in reader {
        let entry = entry.map_err(|e| CoreError::rx(e, "read directory", dir))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || entry.file_type() == FileType::Directory {
            continue;
        }
        let st = match statat(fd.as_fd(), entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                return Err(CoreError::rx(
                    e,
                    "lstat",
                    &dir.join(OsStr::from_bytes(name)),
                ))
            }
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            continue;
        }
        let sig = Signature {
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        };
        entries.insert(name.to_vec(), sig);
    }
    Ok(Listing {
        ident: (st.st_dev, st.st_ino),
        entries,
    })
}

/// Feed the differences between two listings to the state; returns how many changes.
fn diff(
    old: &HashMap<Vec<u8>, Signature>,
    new: &HashMap<Vec<u8>, Signature>,
    st: &mut State,
    now: Instant,
) -> u64 {
    let mut changes = 0;
    for (name, sig) in new {
        if old.get(name) != Some(sig) {
            st.apply(name, Kind::MovedIn, now);
            changes += 1;
        }
    }
    for name in old.keys() {
        if !new.contains_key(name) {
            st.apply(name, Kind::Deleted, now);
            changes += 1;
        }
    }
    changes
}

/// Start polling `dir` every `interval`. Fails (with the path) when the first listing does.
pub fn start(dir: &Path, debounce: Duration, interval: Duration) -> Result<Handle> {
    let dir = std::path::absolute(dir).map_err(|e| CoreError::io(&e, "absolute path", dir))?;
    let first = list(&dir)?;
    let thread_dir = dir.clone();
    Handle::start(dir, debounce, "cl-poll-watcher", move |shared| {
        let mut worker = Worker {
            dir: thread_dir,
            interval,
            last: Some(first),
            shared,
        };
        worker.run();
    })
}

/// The background thread's side.
struct Worker {
    dir: PathBuf,
    interval: Duration,
    /// The previous listing (None while the directory is missing or unreadable).
    last: Option<Listing>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(&mut self) {
        loop {
            if !self.sleep() {
                return;
            }
            let listing = list(&self.dir);
            let now = Instant::now();
            let shared = Arc::clone(&self.shared);
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            self.apply(listing, &mut st, now);
            st.settle(now);
            shared.publish(st);
        }
    }

    /// Wait one interval (or until poked). False when the watcher is closed.
    fn sleep(&self) -> bool {
        let end = Instant::now() + self.interval;
        loop {
            if self.shared.lock().closed {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(self.shared.wake_fd(), PollFlags::IN)];
            if let Ok(n) = poll(&mut fds, Some(&ts)) {
                if n > 0 {
                    self.shared.drain_wake();
                }
            }
        }
    }

    /// Compare a new listing with the last one and update the state.
    fn apply(&mut self, listing: Result<Listing>, st: &mut State, now: Instant) {
        match (listing, self.last.take()) {
            (Ok(new), Some(old)) if new.ident == old.ident => {
                st.events += diff(&old.entries, &new.entries, st, now);
                self.last = Some(new);
            }
            (Ok(new), _) => {
                // Back, or replaced by another directory: a new baseline, the caller rescans.
                st.forget_all();
                st.watching = true;
                self.last = Some(new);
            }
            (Err(e), old) => {
                if old.is_some() || st.watching {
                    st.lost(Some(e.to_string()));
                } else {
                    st.last_error = Some(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn sig(ino: u64, size: u64) -> Signature {
        Signature {
            ino,
            size,
            mtime_ns: 1,
        }
    }

    #[test]
    fn listing_skips_directories_and_keeps_links() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "xyz").unwrap();
        fs::write(d.path().join(".hidden.tmp"), "").unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", d.path().join("link")).unwrap();
        let l = list(d.path()).unwrap();
        let mut names: Vec<&[u8]> = l.entries.keys().map(|k| k.as_slice()).collect();
        names.sort();
        assert_eq!(names, vec![&b".hidden.tmp"[..], b"a", b"link"]);
        assert_eq!(l.entries[&b"a"[..]].size, 3);
        let e = list(&d.path().join("missing")).err().unwrap();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("missing"));
    }

    #[test]
    fn diff_arms_new_and_changed_and_drops_vanished() {
        let t0 = Instant::now();
        let st = &mut State::new(Duration::ZERO);
        let old: HashMap<Vec<u8>, Signature> = [
            (b"same".to_vec(), sig(1, 1)),
            (b"grows".to_vec(), sig(2, 1)),
            (b"gone".to_vec(), sig(3, 1)),
        ]
        .into();
        let new: HashMap<Vec<u8>, Signature> = [
            (b"same".to_vec(), sig(1, 1)),
            (b"grows".to_vec(), sig(2, 2)),
            (b"new".to_vec(), sig(4, 1)),
        ]
        .into();
        assert_eq!(diff(&old, &new, st, t0), 3);
        let mut p = st.coal.pending();
        p.sort();
        assert_eq!(p, vec![b"grows".to_vec(), b"new".to_vec()]);
    }

    fn wait(h: &Handle, ms: u64) -> crate::watch::Batch {
        h.wait_batch(Duration::from_millis(ms))
            .unwrap()
            .unwrap_or_default()
    }

    #[test]
    fn settles_after_a_quiet_listing_and_never_while_growing() {
        let d = tempfile::tempdir().unwrap();
        let h = start(
            d.path(),
            Duration::from_millis(60),
            Duration::from_millis(20),
        )
        .unwrap();
        let p = d.path().join("slow");
        let mut f = fs::File::create(&p).unwrap();
        let mut events = 0;
        for _ in 0..8 {
            f.write_all(b"more").unwrap();
            std::thread::sleep(Duration::from_millis(40));
            let b = h.take_batch();
            assert!(b.paths.is_empty());
            events += b.events;
        }
        drop(f);
        let b = wait(&h, 3000);
        assert_eq!(b.paths, vec![p.clone()]);
        assert!(events + b.events >= 2, "{events}");
        fs::remove_file(&p).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let b = h.take_batch();
        assert!(b.paths.is_empty() && b.events >= 1, "{b:?}");
        h.close();
        assert!(!h.is_alive());
    }

    #[test]
    fn missing_then_back_then_replaced() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("handoff");
        fs::create_dir(&d).unwrap();
        let h = start(&d, Duration::from_millis(10), Duration::from_millis(20)).unwrap();
        fs::remove_dir(&d).unwrap();
        assert!(wait(&h, 3000).rescan);
        assert!(!h.is_alive());
        assert!(h.last_error().unwrap().contains("handoff"));
        fs::create_dir(&d).unwrap();
        assert!(wait(&h, 3000).rescan);
        assert!(h.is_alive());
        fs::rename(&d, root.path().join("old")).unwrap();
        fs::create_dir(&d).unwrap();
        assert!(wait(&h, 3000).rescan);
        assert!(h.is_alive());
        fs::write(d.join("n"), "n").unwrap();
        assert_eq!(wait(&h, 3000).paths, vec![d.join("n")]);
        assert!(start(&root.path().join("nope"), Duration::ZERO, Duration::ZERO).is_err());
    }
}
