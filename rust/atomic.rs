//! Atomic writes: a file is written under a hidden temp name beside its final name
//! (`.<name>.cl-tmp-<pid>-<rand>.tmp`, see [`crate::fsops::ATOMIC_TEMP_MARKER`]), fsynced, renamed
//! over the final name and its directory fsynced — never half-visible under the final name, and the
//! temp file removed on any error or when the writer is dropped before [`TempFile::commit`].
//!
//! [`write_atomic`] and [`write_at`] write one buffer; [`TempFile`] is the same rule in pieces, for
//! a file too large to hold in memory (`conductor-loop state export`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{ErrorKind as IoKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{renameat, unlinkat, AtFlags};

use crate::error::{CoreError, Result};
use crate::fsops::{
    check_name, create_temp, join_bytes, open_dir, split_path, At, ATOMIC_TEMP_MARKER,
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
        let (parent, name) = split_path(path)?;
        check_name(name.as_bytes(), path)?;
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
