//! Is a file open for writing by any process right now? An exact probe with a Linux read lease.
//!
//! `fcntl(F_SETLEASE, F_RDLCK)` on a read-only descriptor is refused with `EAGAIN` while any
//! process (this one included) has the file open for writing; otherwise the lease is granted and
//! released at once. This lets a directory scan tell a file whose writer paused from a file whose
//! writer is done, which its mtime alone cannot (README, "Settle, then take").
//!
//! Leases are not always available: only the file's owner (or a holder of `CAP_LEASE`) may take
//! one (`EACCES`), and some filesystems refuse them (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`, e.g.
//! network filesystems). The probe then answers "unknown" and the caller falls back to its other
//! rules.
//!
//! A writer that opens the file in the instant the lease is held breaks it: the kernel would notify
//! the lease holder with `SIGIO`, whose default action ends the process. The probe therefore
//! names `SIGURG` (ignored by default) as the notification signal first (`F_SETSIG`); the writer
//! waits only until the lease is released a few instructions later (or, with `O_NONBLOCK`, gets
//! `EWOULDBLOCK`).

use std::os::fd::RawFd;
use std::path::Path;

use crate::error::{CoreError, Result};

/// `F_SETSIG` from `<linux/fcntl.h>` (10 on every architecture; not exported by `libc` for all).
const F_SETSIG: libc::c_int = 10;

/// The signal a broken lease would send: ignored unless the process installed a handler for it.
const BREAK_SIGNAL: libc::c_int = libc::SIGURG;

/// `fcntl(fd, cmd, arg)` with an integer argument; the errno on failure.
fn fcntl_int(fd: RawFd, cmd: libc::c_int, arg: libc::c_int) -> std::result::Result<(), i32> {
    // SAFETY: `fd` is an open descriptor owned by the caller for the whole call, and F_SETSIG and
    // F_SETLEASE take a plain integer argument: no memory is passed to the kernel.
    let rc = unsafe { libc::fcntl(fd, cmd, arg) };
    if rc == -1 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(())
    }
}

/// Errors that mean "leases are not available here", not "something is wrong with the file".
fn unavailable(errno: i32) -> bool {
    errno == libc::EPERM
        || errno == libc::EACCES
        || errno == libc::EINVAL
        || errno == libc::ENOSYS
        || errno == libc::EOPNOTSUPP
}

/// The lease probe on `fd`, a read-only descriptor of the regular file `path`: taken and released at
/// once. `Some(true)` when some process has the file open for writing, `Some(false)` when none has,
/// `None` when leases are not available for it (not the owner without `CAP_LEASE`, a filesystem
/// without leases). The caller opens the file (`O_RDONLY|O_NOFOLLOW|O_NONBLOCK`: never blocks,
/// never follows a symlink); an open refused with `EAGAIN` already means a write lease holder has it
/// ([`crate::survey::survey_file`]).
pub fn probe(fd: RawFd, path: &Path) -> Result<Option<bool>> {
    match fcntl_int(fd, F_SETSIG, BREAK_SIGNAL) {
        Ok(()) => {}
        Err(errno) if unavailable(errno) => return Ok(None),
        Err(errno) => return Err(CoreError::os(errno, "fcntl(F_SETSIG)", path)),
    }
    match fcntl_int(fd, libc::F_SETLEASE, libc::F_RDLCK) {
        Ok(()) => {
            fcntl_int(fd, libc::F_SETLEASE, libc::F_UNLCK)
                .map_err(|errno| CoreError::os(errno, "fcntl(F_SETLEASE, F_UNLCK)", path))?;
            Ok(Some(false))
        }
        Err(errno) if errno == libc::EAGAIN => Ok(Some(true)),
        Err(errno) if unavailable(errno) => Ok(None),
        Err(errno) => Err(CoreError::os(errno, "fcntl(F_SETLEASE, F_RDLCK)", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::open_regular;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// The probe as the survey makes it: open read-only, then probe.
    fn open_for_write(path: &Path) -> Result<Option<bool>> {
        let (file, _size) = open_regular(path)?;
        probe(file.as_raw_fd(), path)
    }

    #[test]
    fn writer_open_is_seen_and_its_close_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-a.json");
        let mut w = File::create(&p).unwrap();
        w.write_all(b"{\"half\":").unwrap();
        assert_eq!(open_for_write(&p).unwrap(), Some(true));
        drop(w);
        assert_eq!(open_for_write(&p).unwrap(), Some(false));
    }

    #[test]
    fn readers_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-a.json");
        fs::write(&p, b"{}").unwrap();
        let _r1 = File::open(&p).unwrap();
        let _r2 = OpenOptions::new().read(true).open(&p).unwrap();
        assert_eq!(open_for_write(&p).unwrap(), Some(false));
        // Probing twice in a row works: the lease was released.
        assert_eq!(open_for_write(&p).unwrap(), Some(false));
    }

    #[test]
    fn append_and_read_write_opens_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-a.json");
        fs::write(&p, b"{}").unwrap();
        let a = OpenOptions::new().append(true).open(&p).unwrap();
        assert_eq!(open_for_write(&p).unwrap(), Some(true));
        drop(a);
        let rw = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert_eq!(open_for_write(&p).unwrap(), Some(true));
        drop(rw);
        assert_eq!(open_for_write(&p).unwrap(), Some(false));
    }

    #[test]
    fn unavailable_errnos() {
        for e in [libc::EPERM, libc::EACCES, libc::EINVAL, libc::ENOSYS] {
            assert!(unavailable(e));
        }
        assert!(!unavailable(libc::EAGAIN));
        assert!(!unavailable(libc::EBADF));
    }
}
