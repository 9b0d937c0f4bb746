//! Atomic writes: a file is written under a hidden temp name beside its final name
//! (`.<name>.cl-tmp-<pid>-<rand>.tmp`, see [`crate::fsops::ATOMIC_TEMP_MARKER`]), fsynced, renamed
//! over the final name and its directory fsynced — never half-visible under the final name, and the
//! temp file removed on any error or when the writer is dropped before [`TempFile::commit`].
//!
//! [`write_atomic`] and [`write_at`] write one buffer; [`TempFile`] is the same rule in pieces, for
//! a file too large to hold in memory (`conductor-loop state export`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{ErrorKind as IoKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{renameat, unlinkat, AtFlags};
use rustix::io::Errno;
use rustix::process::{test_kill_process, Pid};

use crate::error::{CoreError, Result};
use crate::fsops::{
    check_name, create_temp, join_bytes, open_dir, split_path, temp_name_of, At,
    ATOMIC_TEMP_MARKER, TEMP_SUFFIX,
};

/// Write `data` to a hidden temp file beside `path`, fsync it (if `fsync`), rename it over
/// `path`, fsync the directory (if `fsync`). The temp file is removed on any error.
pub fn write_atomic(path: &Path, data: &[u8], fsync: bool, mode: u32) -> Result<()> {
    let mut file = TempFile::create(path, mode)?;
    file.write(data)?;
    file.commit(fsync)
}

/// [`write_atomic`] of `name` in a directory already open.
pub fn write_at(dir: At<'_>, name: &OsStr, data: &[u8], fsync: bool, mode: u32) -> Result<()> {
    let mut file = TempFile::create_in(dir.fd, dir.path.to_path_buf(), name, mode)?;
    file.write(data)?;
    file.commit(fsync)
}

/// A file being written under its temp name in directory `D` (an owned or a borrowed descriptor).
pub struct TempFile<D: AsFd> {
    dir: D,
    dir_path: PathBuf,
    name: OsString,
    tmp_name: Vec<u8>,
    file: File,
    armed: bool,
}

impl TempFile<OwnedFd> {
    /// Start writing `path` (its directory opened here); the file gets `mode` less the umask.
    pub fn create(path: &Path, mode: u32) -> Result<Self> {
        let (parent, name) = split_path(path)?; // the name is checked by create_in
        let dir = open_dir(&parent)?;
        TempFile::create_in(dir, parent, &name, mode)
    }
}

impl<D: AsFd> TempFile<D> {
    /// Start writing `name` in the open directory `dir`, shown as `dir_path` in messages.
    pub fn create_in(dir: D, dir_path: PathBuf, name: &OsStr, mode: u32) -> Result<Self> {
        check_name(name.as_bytes(), &join_bytes(&dir_path, name.as_bytes()))?;
        let (file, guard) = create_temp(
            dir.as_fd(),
            &dir_path,
            name.as_bytes(),
            ATOMIC_TEMP_MARKER,
            mode,
        )?;
        let tmp_name = guard.disarm(); // this writer removes it from now on (Drop)
        Ok(TempFile {
            dir,
            dir_path,
            name: name.to_owned(),
            tmp_name,
            file,
            armed: true,
        })
    }

    /// The temp file's path, for messages.
    pub fn temp_path(&self) -> PathBuf {
        join_bytes(&self.dir_path, &self.tmp_name)
    }

    /// The final path, for messages.
    pub fn final_path(&self) -> PathBuf {
        join_bytes(&self.dir_path, self.name.as_bytes())
    }

    /// Append `data` to the temp file.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        loop {
            match self.file.write_all(data) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => return Err(CoreError::io(&e, "write", &self.temp_path())),
            }
        }
    }

    /// fsync the file (if `fsync`), rename it over the final name, fsync the directory (if `fsync`).
    /// On an error before the rename the temp file is removed and the final name keeps what it had.
    pub fn commit(mut self, fsync: bool) -> Result<()> {
        if fsync {
            rustix::fs::fsync(&self.file)
                .map_err(|e| CoreError::rx(e, "fsync", &self.temp_path()))?;
        }
        let dir = self.dir.as_fd();
        renameat(dir, OsStr::from_bytes(&self.tmp_name), dir, &self.name).map_err(|e| {
            CoreError::rx(e, "rename", &self.temp_path()).with_filename2(&self.final_path())
        })?;
        self.armed = false;
        if fsync {
            rustix::fs::fsync(dir)
                .map_err(|e| CoreError::rx(e, "fsync directory", &self.dir_path))?;
        }
        Ok(())
    }
}

impl<D: AsFd> Drop for TempFile<D> {
    fn drop(&mut self) {
        if self.armed {
            let tmp = OsStr::from_bytes(&self.tmp_name);
            let _ = unlinkat(self.dir.as_fd(), tmp, AtFlags::empty());
        }
    }
}

/// Remove the temp files that writers of `path` left beside it and that no process will finish: a
/// name [`TempFile`] would give `path` whose process id is gone (`kill(pid, 0)` says `ESRCH`). A
/// writer killed before its commit leaves one (nothing runs its `Drop`); temps of live processes
/// (another export of the same file) are kept. Returns how many were removed.
pub fn remove_dead_temps(path: &Path) -> Result<usize> {
    let (parent, name) = split_path(path)?;
    check_name(name.as_bytes(), path)?;
    let entries = fs::read_dir(&parent).map_err(|e| CoreError::io(&e, "list", &parent))?;
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        match writer_of(file_name.as_bytes(), name.as_bytes()) {
            Some(pid) if !process_exists(pid) => {}
            _ => continue,
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == IoKind::NotFound => {}
            Err(e) => return Err(CoreError::io(&e, "remove", &entry.path())),
        }
    }
    Ok(removed)
}

/// The process id in `entry` when it is exactly a temp name of `name` (see [`TempFile`]).
fn writer_of(entry: &[u8], name: &[u8]) -> Option<i32> {
    let rest = entry.strip_suffix(TEMP_SUFFIX.as_bytes())?;
    let dash = rest.iter().rposition(|&b| b == b'-')?;
    let token = std::str::from_utf8(&rest[dash + 1..]).ok()?;
    let marker = ATOMIC_TEMP_MARKER.as_bytes();
    let digits = rest[..dash]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let pid_at = dash - digits;
    if digits == 0 || !rest[..pid_at].ends_with(marker) {
        return None;
    }
    let pid: i32 = std::str::from_utf8(&rest[pid_at..dash])
        .ok()?
        .parse()
        .ok()?;
    (pid > 0 && temp_name_of(name, ATOMIC_TEMP_MARKER, pid, token) == entry).then_some(pid)
}

/// Is there a process `pid` (ours or another user's)?
fn process_exists(pid: i32) -> bool {
    // kill(pid, 0) sends nothing: only ESRCH says there is no such process (EPERM: another user's).
    Pid::from_raw(pid).is_some_and(|p| test_kill_process(p) != Err(Errno::SRCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn atomic_write_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("status.json");
        write_atomic(&p, b"one", true, 0o666).unwrap();
        write_atomic(&p, b"two", false, 0o666).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        let e = write_atomic(&d.path().join("nodir/x"), b"", true, 0o666).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        // renaming a file over a directory fails: temp must be removed
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"k").unwrap();
        let e = write_atomic(&sub, b"x", true, 0o666).unwrap_err();
        assert_eq!(e.errno, libc::EISDIR);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
        assert!(write_atomic(Path::new("/"), b"", true, 0o666).is_err());
    }

    #[test]
    fn dead_writers_temps_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let long = "x".repeat(250);
        for name in ["export.json", long.as_str()] {
            let p = d.path().join(name);
            let dead = std::process::Command::new("true").spawn().unwrap();
            let dead_pid = dead.id() as i32;
            let mut dead = dead;
            dead.wait().unwrap();
            let at = |pid: i32| -> PathBuf {
                let n = temp_name_of(name.as_bytes(), ATOMIC_TEMP_MARKER, pid, "0123456789ab");
                d.path().join(OsStr::from_bytes(&n))
            };
            let (left, live) = (at(dead_pid), at(std::process::id() as i32));
            fs::write(&left, b"half").unwrap();
            fs::write(&live, b"writing").unwrap();
            let other = d.path().join(".other.json.cl-tmp-1-0123456789ab.tmp");
            fs::write(&other, b"not ours").unwrap();
            assert_eq!(remove_dead_temps(&p).unwrap(), 1);
            assert!(!left.exists() && live.exists() && other.exists());
            fs::remove_file(&live).unwrap();
            fs::remove_file(&other).unwrap();
        }
        assert!(remove_dead_temps(&d.path().join("missing/x")).is_err());
    }

    #[test]
    fn writer_of_reads_only_exact_temp_names() {
        let name = b"export.json";
        let t = temp_name_of(name, ATOMIC_TEMP_MARKER, 4242, "00ff00ff00ff");
        assert_eq!(writer_of(&t, name), Some(4242));
        assert_eq!(writer_of(&t, b"other.json"), None);
        for bad in [
            &b".export.json.cl-tmp--00ff00ff00ff.tmp"[..],
            b".export.json.cl-tmp-12-00ff00ff00ff",
            b".export.json.cl-move-12-00ff00ff00ff.tmp",
            b"export.json.cl-tmp-12-00ff00ff00ff.tmp",
            b".export.json",
            b"-.tmp",
        ] {
            assert_eq!(
                writer_of(bad, name),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pieces_appear_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("export.json");
        fs::write(&p, b"old").unwrap();
        let mut f = TempFile::create(&p, 0o644).unwrap();
        f.write(b"{\"a\":").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"old"); // not visible before the commit
        assert!(f.temp_path().exists());
        f.write(b"1}").unwrap();
        f.commit(true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_before_commit_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("export.json");
        let mut f = TempFile::create(&p, 0o644).unwrap();
        f.write(b"partial").unwrap();
        let tmp = f.temp_path();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_over_a_directory_fails_and_removes_the_temp() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mut f = TempFile::create(&sub, 0o644).unwrap();
        f.write(b"x").unwrap();
        let e = f.commit(false).unwrap_err();
        assert_eq!(e.errno, libc::EISDIR);
        assert_eq!(e.filename2.as_deref(), Some(sub.as_os_str()));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
