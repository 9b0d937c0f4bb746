//! Writes and moves below a directory held open, never following a symbolic link below it.
//!
//! An [`Anchor`] is a directory (the handoff) opened once by its configured path, which may be
//! reached through symlinks as the operator set it up. Everything below it is resolved from that
//! descriptor one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` (the loop's own
//! directories are one component deep, so that is one system call), or, for deeper paths, with
//! one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` where the kernel
//! has it (the walk again on ENOSYS, or on EPERM from a seccomp filter). Files are then created, renamed, unlinked
//! and fsynced relative to the directory descriptors ([`crate::atomic::write_at`],
//! [`crate::fsops::move_at`]): a sub-directory swapped for a link at any moment is refused with
//! [`ErrorKind::LinkInPath`](crate::error::ErrorKind::LinkInPath) (ELOOP, or ENOTDIR for a
//! non-directory) and nothing is written through it (docs/SECURITY.md).
//!
//! When the anchored directory is deleted (and made again under its path), an operation that
//! fails with ENOENT on the dead descriptor (`st_nlink == 0`) opens the path again and is tried
//! once more: nothing was written before an ENOENT.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::fs::{
    fstat, openat, openat2, statat, unlinkat, AtFlags, FileType, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

use crate::atomic::write_at;
use crate::error::{CoreError, Result};
use crate::fsops::{move_at, open_dir, At};

/// Set once `openat2` was found missing (ENOSYS) or filtered (EPERM): walk component by component.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `openat2` refuses every symlink by `RESOLVE_NO_SYMLINKS` (ELOOP, also for the last component).
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// The walk refuses a symlink by `O_NOFOLLOW` (the kernel answers ENOTDIR with `O_DIRECTORY`).
const WALK_FLAGS: OFlags = DIR_FLAGS.union(OFlags::NOFOLLOW);

/// A directory below the anchor, or the anchor itself.
pub enum DirFd {
    /// The anchored directory.
    Root(Arc<OwnedFd>),
    /// A directory resolved below it.
    Sub(OwnedFd),
}

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => fd.as_fd(),
            DirFd::Sub(fd) => fd.as_fd(),
        }
    }
}

fn refused(e: Errno, root: &Path, shown: &Path) -> CoreError {
    if e == Errno::LOOP || e == Errno::NOTDIR || e == Errno::XDEV {
        CoreError::link_in_path(e.raw_os_error(), root, shown)
    } else {
        CoreError::rx(e, "open directory", shown)
    }
}

/// Open the directory `rel` (relative, no `..`) below `root` without following any symlink;
/// `root_path` is the anchor's path, for messages.
pub fn open_beneath(root: BorrowedFd<'_>, rel: &Path, root_path: &Path) -> Result<OwnedFd> {
    // One component (`status`, `processed`, `failed`): one openat(O_NOFOLLOW) is the whole walk.
    if rel.components().nth(1).is_none() || NO_OPENAT2.load(Ordering::Relaxed) {
        return walk_beneath(root, rel, root_path);
    }
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match openat2(root, rel, DIR_FLAGS, Mode::empty(), how) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOSYS | Errno::PERM) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            walk_beneath(root, rel, root_path)
        }
        Err(Errno::AGAIN | Errno::INTR) => walk_beneath(root, rel, root_path),
        Err(e) => Err(refused(e, root_path, &root_path.join(rel))),
    }
}

/// The fallback of [`open_beneath`]: one `openat(O_NOFOLLOW | O_DIRECTORY)` per component.
pub fn walk_beneath(root: BorrowedFd<'_>, rel: &Path, root_path: &Path) -> Result<OwnedFd> {
    let mut cur: Option<OwnedFd> = None;
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            return Err(CoreError::value(
                "path must stay below the anchor",
                &root_path.join(rel),
            ));
        };
        let at = cur.as_ref().map_or(root, AsFd::as_fd);
        let next = openat(at, name, WALK_FLAGS, Mode::empty()).map_err(|e| {
            // Say ELOOP for a link, as openat2 does; ENOTDIR stays for a non-directory.
            let link = e == Errno::NOTDIR
                && statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            refused(
                if link { Errno::LOOP } else { e },
                root_path,
                &root_path.join(rel),
            )
        })?;
        cur = Some(next);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => openat(root, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| CoreError::rx(e, "open directory", root_path)),
    }
}

/// A directory held open; see the module documentation.
pub struct Anchor {
    path: PathBuf,
    fd: Mutex<Arc<OwnedFd>>,
}

impl Anchor {
    /// Open `path` (symlinks in it followed: it is the configured root); a relative `path` is
    /// taken from the current directory and kept absolute.
    pub fn open(path: &Path) -> Result<Self> {
        let path = absolute(path)?;
        let fd = open_dir(&path)?;
        Ok(Anchor {
            path,
            fd: Mutex::new(Arc::new(fd)),
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn current(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Open the path again (after the directory was deleted and made again).
    pub fn reopen(&self) -> Result<()> {
        let fd = Arc::new(open_dir(&self.path)?);
        *self.fd.lock().unwrap_or_else(PoisonError::into_inner) = fd;
        Ok(())
    }

    /// `path` (absolute, or relative to the current directory, as every path of the core) relative
    /// to the anchor: it must lie below it, with no `..` anywhere.
    pub fn relative(&self, path: &Path) -> Result<PathBuf> {
        let owned;
        let path = if path.is_absolute() {
            path
        } else {
            owned = absolute(path)?;
            &owned
        };
        let rel = path
            .strip_prefix(&self.path)
            .map_err(|_| CoreError::value("path is not below the anchor", path))?;
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(CoreError::value("path must stay below the anchor", path));
        }
        Ok(rel.to_path_buf())
    }

    /// The directory `rel` below the anchor (the anchor itself when `rel` is empty).
    fn dir(&self, root: &Arc<OwnedFd>, rel: &Path) -> Result<DirFd> {
        if rel.as_os_str().is_empty() || rel == Path::new(".") {
            return Ok(DirFd::Root(Arc::clone(root)));
        }
        open_beneath(root.as_fd(), rel, &self.path).map(DirFd::Sub)
    }

    /// Run `op` on the current descriptor; on ENOENT from a deleted anchor, reopen and run it again.
    fn run<T>(&self, op: impl Fn(&Arc<OwnedFd>) -> Result<T>) -> Result<T> {
        let root = self.current();
        match op(&root) {
            Err(e) if e.errno == libc::ENOENT && deleted(&root) => {
                self.reopen()?;
                op(&self.current())
            }
            r => r,
        }
    }

    /// [`crate::atomic::write_atomic`] of `path` (below the anchor).
    pub fn write_atomic(&self, path: &Path, data: &[u8], fsync: bool, mode: u32) -> Result<()> {
        let rel = self.relative(path)?;
        let (parent, name) = split(&rel, path)?;
        let shown = self.path.join(parent);
        self.run(|root| {
            let dir = self.dir(root, parent)?;
            write_at(At::new(dir.as_fd(), &shown), name, data, fsync, mode)
        })
    }

    /// [`crate::fsops::move_noclobber`] of `src` into `dst_dir` (both below the anchor).
    pub fn move_noclobber(
        &self,
        src: &Path,
        dst_dir: &Path,
        name: Option<&OsStr>,
    ) -> Result<OsString> {
        let src_rel = self.relative(src)?;
        let dst_rel = self.relative(dst_dir)?;
        let (src_parent, src_name) = split(&src_rel, src)?;
        let name = name.unwrap_or(src_name);
        let (from_path, to_path) = (self.path.join(src_parent), self.path.join(&dst_rel));
        self.run(|root| {
            let from = self.dir(root, src_parent)?;
            let to = self.dir(root, &dst_rel)?;
            move_at(
                At::new(from.as_fd(), &from_path),
                src_name,
                At::new(to.as_fd(), &to_path),
                name,
            )
        })
    }

    /// Remove the file `path` (below the anchor; never a directory) relative to its directory.
    pub fn unlink(&self, path: &Path) -> Result<()> {
        let rel = self.relative(path)?;
        let (parent, name) = split(&rel, path)?;
        let shown = self.path.join(&rel);
        self.run(|root| {
            let dir = self.dir(root, parent)?;
            unlinkat(&dir, name, AtFlags::empty()).map_err(|e| CoreError::rx(e, "unlink", &shown))
        })
    }

    /// fsync the directory `path` (below the anchor, or the anchor itself).
    pub fn fsync_dir(&self, path: &Path) -> Result<()> {
        let rel = self.relative(path)?;
        let shown = self.path.join(&rel);
        self.run(|root| {
            let dir = self.dir(root, &rel)?;
            rustix::fs::fsync(&dir).map_err(|e| CoreError::rx(e, "fsync directory", &shown))
        })
    }
}

/// `path` made absolute from the current directory (lexically: `..` stays, and is refused later).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| CoreError::io(&e, "absolute path", path))
}

/// The anchored directory was deleted (a directory's link count drops to 0 when it is removed).
fn deleted(fd: &OwnedFd) -> bool {
    fstat(fd).is_ok_and(|st| st.st_nlink == 0)
}

/// Parent (possibly empty) and file name of a relative path.
fn split<'a>(rel: &'a Path, shown: &Path) -> Result<(&'a Path, &'a OsStr)> {
    let name = rel
        .file_name()
        .ok_or_else(|| CoreError::value("path has no file name", shown))?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A handoff with `status/` and `processed/`, and a directory elsewhere for links to point to.
    fn handoff() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("handoff");
        let elsewhere = d.path().join("elsewhere");
        for p in [
            &root,
            &root.join("status"),
            &root.join("processed"),
            &elsewhere,
        ] {
            fs::create_dir(p).unwrap();
        }
        (d, root, elsewhere)
    }

    fn swap_for_link(dir: &Path, target: &Path) {
        fs::remove_dir(dir).unwrap();
        symlink(target, dir).unwrap();
    }

    fn names(dir: &Path) -> Vec<OsString> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn writes_and_moves_below_the_anchor() {
        let (_d, root, _) = handoff();
        let a = Anchor::open(&root).unwrap();
        a.write_atomic(&root.join("status/x.status"), b"one", true, 0o640)
            .unwrap();
        a.write_atomic(&root.join("status/./x.status"), b"two", false, 0o640)
            .unwrap();
        assert_eq!(fs::read(root.join("status/x.status")).unwrap(), b"two");
        fs::write(root.join("intent-a.json"), b"{}").unwrap();
        let moved = a
            .move_noclobber(&root.join("intent-a.json"), &root.join("processed"), None)
            .unwrap();
        assert_eq!(PathBuf::from(moved), root.join("processed/intent-a.json"));
        let back = a
            .move_noclobber(
                &root.join("processed/intent-a.json"),
                &root,
                Some(OsStr::new("b")),
            )
            .unwrap();
        assert_eq!(PathBuf::from(back), root.join("b"));
        a.fsync_dir(&root).unwrap();
        a.fsync_dir(&root.join("processed")).unwrap();
        a.unlink(&root.join("b")).unwrap();
        assert_eq!(a.unlink(&root.join("b")).unwrap_err().errno, libc::ENOENT);
        assert_eq!(
            a.unlink(&root.join("status")).unwrap_err().errno,
            libc::EISDIR
        );
    }

    #[test]
    fn a_linked_sub_directory_is_refused_and_nothing_lands_in_its_target() {
        let (_d, root, elsewhere) = handoff();
        let a = Anchor::open(&root).unwrap();
        swap_for_link(&root.join("processed"), &elsewhere);
        swap_for_link(&root.join("status"), &elsewhere);
        fs::write(root.join("intent-a.json"), b"{}").unwrap();
        let e = a
            .move_noclobber(&root.join("intent-a.json"), &root.join("processed"), None)
            .unwrap_err();
        assert_eq!(
            (e.kind, e.errno),
            (ErrorKind::LinkInPath, libc::ELOOP),
            "{e}"
        );
        assert!(e.to_string().contains("processed"), "{e}");
        let e = a
            .write_atomic(&root.join("status/x.status"), b"x", false, 0o640)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::LinkInPath);
        assert_eq!(
            a.fsync_dir(&root.join("status")).unwrap_err().kind,
            ErrorKind::LinkInPath
        );
        fs::write(elsewhere.join("keep"), b"k").unwrap();
        let e = a.unlink(&root.join("status/keep")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LinkInPath);
        fs::remove_file(elsewhere.join("keep")).unwrap();
        // The source side too: a move out of a linked directory is refused.
        let e = a
            .move_noclobber(&root.join("status/y"), &root, None)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::LinkInPath);
        assert!(names(&elsewhere).is_empty());
        assert!(root.join("intent-a.json").exists());
    }

    #[test]
    fn a_file_in_place_of_a_directory_is_refused() {
        let (_d, root, _) = handoff();
        let a = Anchor::open(&root).unwrap();
        fs::remove_dir(root.join("status")).unwrap();
        fs::write(root.join("status"), b"").unwrap();
        let e = a
            .write_atomic(&root.join("status/x.status"), b"x", false, 0o640)
            .unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::LinkInPath, libc::ENOTDIR));
    }

    #[test]
    fn the_fallback_walk_refuses_links_too() {
        let (_d, root, elsewhere) = handoff();
        fs::create_dir(root.join("status/deep")).unwrap();
        let rfd = open_dir(&root).unwrap();
        walk_beneath(rfd.as_fd(), Path::new("status/deep"), &root).unwrap();
        walk_beneath(rfd.as_fd(), Path::new(""), &root).unwrap();
        swap_for_link(&root.join("processed"), &elsewhere);
        let e = walk_beneath(rfd.as_fd(), Path::new("processed"), &root).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::LinkInPath, libc::ELOOP));
        symlink(&elsewhere, root.join("status/deep/link")).unwrap();
        let e = walk_beneath(rfd.as_fd(), Path::new("status/deep/link"), &root).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LinkInPath);
        let e = walk_beneath(rfd.as_fd(), Path::new("status/../.."), &root).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Value);
        // openat2 for more than one component: the same answers.
        open_beneath(rfd.as_fd(), Path::new("status/deep"), &root).unwrap();
        let e = open_beneath(rfd.as_fd(), Path::new("status/deep/link"), &root).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::LinkInPath, libc::ELOOP));
        let e = open_beneath(rfd.as_fd(), Path::new("processed/x"), &root).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::LinkInPath, libc::ELOOP));
    }

    #[test]
    fn the_root_may_be_a_link_but_paths_must_stay_below_it() {
        let (d, root, _) = handoff();
        let via = d.path().join("via");
        symlink(&root, &via).unwrap();
        let a = Anchor::open(&via).unwrap();
        a.write_atomic(&via.join("status/x"), b"x", false, 0o640)
            .unwrap();
        assert!(root.join("status/x").exists());
        for bad in [
            d.path().join("elsewhere/x"),
            via.join("status/../../x"),
            PathBuf::from("../x"),
        ] {
            let e = a.write_atomic(&bad, b"x", false, 0o640).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Value, "{bad:?}");
        }
    }

    #[test]
    fn a_deleted_and_remade_anchor_is_opened_again() {
        let (_d, root, _) = handoff();
        let a = Anchor::open(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        let e = a
            .write_atomic(&root.join("status/x"), b"x", false, 0o640)
            .unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        fs::create_dir_all(root.join("status")).unwrap();
        a.write_atomic(&root.join("status/x"), b"x", false, 0o640)
            .unwrap();
        fs::write(root.join("intent-a.json"), b"{}").unwrap();
        a.fsync_dir(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("intent-b.json"), b"{}").unwrap();
        fs::create_dir(root.join("failed")).unwrap();
        let f = a
            .move_noclobber(&root.join("intent-b.json"), &root.join("failed"), None)
            .unwrap();
        assert_eq!(PathBuf::from(f), root.join("failed/intent-b.json"));
    }
}
