//! The built-in porch's package writer: a whole directory of small files made in a hidden temp
//! directory and put at its final name in one step, never half-visible there.
//!
//! [`write_package`] makes `<ns_dir>/.<name>.tmp-<12 hex>` (the pattern the Python side's
//! `remove_stale_temps` finds after a crash), writes each file into it (`O_CREAT | O_EXCL`, 0644),
//! and [`install`]s it at `<ns_dir>/<name>`: a plain `rename(2)`, or, when a package is there
//! already, `renameat2(RENAME_EXCHANGE)` and the removal of the old tree (now under the temp name).
//! On a filesystem without `RENAME_EXCHANGE` the old one is moved aside first: the final name is then
//! briefly absent, but never holds a mixed package. Errors carry the C library's text alone (as
//! Python's `os` functions give it) and the path; the temp directory is removed on any error.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{mkdir, open, rename, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{CoreError, Result};
use crate::fsops::{check_name, fsync_dir, rand_token, rename_exchange};

/// What separates the package's name from the random part in its temp directory's name.
pub const PACKAGE_TEMP_MARKER: &str = ".tmp-";

/// How often [`install`] starts over when the final name keeps appearing and vanishing.
const INSTALL_TRIES: usize = 100;

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

fn plain(e: Errno, path: &Path) -> CoreError {
    CoreError::plain(e.raw_os_error(), path)
}

/// The hidden temp name of a package `name`: `.<name>.tmp-<12 hex digits>`.
pub fn temp_name(name: &OsStr) -> OsString {
    let token = rand_token();
    let mut v = Vec::with_capacity(name.len() + PACKAGE_TEMP_MARKER.len() + token.len() + 1);
    v.push(b'.');
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(PACKAGE_TEMP_MARKER.as_bytes());
    v.extend_from_slice(token.as_bytes());
    OsString::from_vec(v)
}

/// Write the package `name` with `files` (file name, content) under `ns_dir` and return its path.
///
/// `ns_dir` (and any missing parent) is made when missing. `durable` fsyncs every file, the temp
/// directory, `ns_dir` after the install and the parent of every directory made. On any error the
/// temp directory is removed and the package at the final name (if any) is the one that was there.
pub fn write_package(
    ns_dir: &Path,
    name: &OsStr,
    files: &[(&[u8], &[u8])],
    durable: bool,
) -> Result<PathBuf> {
    let final_path = ns_dir.join(name);
    check_name(name.as_bytes(), &final_path)?;
    for (file, _) in files {
        check_name(file, &final_path.join(OsStr::from_bytes(file)))?;
    }
    let tmp = ns_dir.join(temp_name(name));
    let created = make_temp_dir(ns_dir, &tmp)?;
    if let Err(e) = fill_and_install(&tmp, &final_path, files, durable) {
        remove_tree(&tmp);
        return Err(e);
    }
    if durable {
        fsync_dir(ns_dir)?;
        for dir in created.iter().rev() {
            fsync_dir(parent_of(dir))?;
        }
    }
    Ok(final_path)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `mkdir` the temp directory, making `ns_dir` first when it is missing; returns the directories
/// made besides the temp one, outermost first.
fn make_temp_dir(ns_dir: &Path, tmp: &Path) -> Result<Vec<PathBuf>> {
    let mode = Mode::from_raw_mode(DIR_MODE);
    match mkdir(tmp, mode) {
        Ok(()) => return Ok(Vec::new()),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(plain(e, tmp)),
    }
    let mut created = Vec::new();
    make_dirs(ns_dir, &mut created)?;
    mkdir(tmp, mode).map_err(|e| plain(e, tmp))?;
    Ok(created)
}

/// `os.makedirs(path, exist_ok=True)`, recording what it made (outermost first).
fn make_dirs(path: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mode = Mode::from_raw_mode(DIR_MODE);
    let mut result = mkdir(path, mode);
    if result == Err(Errno::NOENT) {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => make_dirs(p, created)?,
            _ => return Err(plain(Errno::NOENT, path)),
        }
        result = mkdir(path, mode);
    }
    match result {
        Ok(()) => {
            created.push(path.to_path_buf());
            Ok(())
        }
        Err(Errno::EXIST) if path.is_dir() => Ok(()),
        Err(e) => Err(plain(e, path)),
    }
}

fn fill_and_install(
    tmp: &Path,
    final_path: &Path,
    files: &[(&[u8], &[u8])],
    durable: bool,
) -> Result<()> {
    for (name, data) in files {
        write_file(&tmp.join(OsStr::from_bytes(name)), data, durable)?;
    }
    if durable {
        fsync_dir(tmp)?;
    }
    install(tmp, final_path)
}

/// Create `path` (never an existing file), write `data`, fsync it when `durable`.
fn write_file(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let fd = open(path, flags, Mode::from_raw_mode(FILE_MODE)).map_err(|e| plain(e, path))?;
    let mut file = File::from(fd);
    file.write_all(data).map_err(|e| io_err(&e, path))?;
    if durable {
        rustix::fs::fsync(&file).map_err(|e| plain(e, path))?;
    }
    // Closed by hand, not by drop: a close that fails (a network filesystem reporting a lost write)
    // is an error, as Python's `os.close` made it. EINTR still closes the descriptor on Linux.
    let raw = file.into_raw_fd();
    // SAFETY: `raw` came from `into_raw_fd` just above and is closed exactly once, here.
    if unsafe { libc::close(raw) } != 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if errno != libc::EINTR {
            return Err(CoreError::plain(errno, path));
        }
    }
    Ok(())
}

fn io_err(e: &std::io::Error, path: &Path) -> CoreError {
    match e.raw_os_error() {
        Some(errno) => CoreError::plain(errno, path),
        None => CoreError::io(e, "write", path),
    }
}

/// Put the complete directory (or file) `tmp` at `final_path`: rename, or swap with what is there
/// and remove that. Never half-visible under the final name.
pub fn install(tmp: &Path, final_path: &Path) -> Result<()> {
    install_with(tmp, final_path, rename_exchange)
}

/// [`install`] with the exchange step given (tests stand in a filesystem without it).
fn install_with(
    tmp: &Path,
    final_path: &Path,
    exchange: impl Fn(&Path, &Path) -> Result<()>,
) -> Result<()> {
    for _ in 0..INSTALL_TRIES {
        match rename(tmp, final_path) {
            Ok(()) => return Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOTDIR | Errno::ISDIR) => {}
            Err(e) => return Err(plain(e, tmp).with_filename2(final_path)),
        }
        match exchange(tmp, final_path) {
            Ok(()) => {
                remove_tree(tmp); // the old package, now under the temporary name
                return Ok(());
            }
            // The old package vanished between the two calls: plain rename again.
            Err(e) if e.errno == libc::ENOENT => continue,
            Err(e) if matches!(e.errno, libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                if replace_aside(tmp, final_path)? {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(CoreError {
        msg: "could not install the package: target kept changing".to_owned(),
        ..CoreError::plain(libc::EBUSY, final_path)
    })
}

/// No `RENAME_EXCHANGE` here: move the old package aside, rename `tmp` into place, remove the old
/// one. `Ok(false)` when the old one vanished first (the caller starts over).
fn replace_aside(tmp: &Path, final_path: &Path) -> Result<bool> {
    let mut aside = tmp.as_os_str().to_owned();
    aside.push(".old");
    let aside = PathBuf::from(aside);
    match rename(final_path, &aside) {
        Ok(()) => {}
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(plain(e, final_path).with_filename2(&aside)),
    }
    let placed = rename(tmp, final_path).map_err(|e| plain(e, tmp).with_filename2(final_path));
    if placed.is_err() {
        let _ = rename(&aside, final_path); // put the old one back when nothing took its place
    }
    remove_tree(&aside);
    placed.map(|()| true)
}

/// Remove `path` whatever it is (a directory tree, a file, a link; never followed); errors ignored.
pub fn remove_tree(path: &Path) {
    // `remove_dir_all` removes a link itself (never what it points at) and refuses a file.
    if let Err(e) = fs::remove_dir_all(path) {
        if e.raw_os_error() == Some(libc::ENOTDIR) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::cell::Cell;
    use std::os::unix::fs::PermissionsExt;

    const TWO: [(&[u8], &[u8]); 2] = [(b"Kptfile", b"kpt\n"), (b"scaling-patch.yaml", b"patch\n")];

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_match_the_stale_pattern() {
        let t = temp_name(OsStr::new("odu-scaling"));
        let s = t.to_str().unwrap();
        let hex = s.strip_prefix(".odu-scaling.tmp-").unwrap();
        assert_eq!(hex.len(), 12, "{s}");
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(t, temp_name(OsStr::new("odu-scaling")));
    }

    #[test]
    fn writes_a_package_and_makes_missing_dirs() {
        let d = tempfile::tempdir().unwrap();
        let ns = d.path().join("out/ran");
        for durable in [false, true] {
            let p = write_package(&ns, OsStr::new("a-scaling"), &TWO, durable).unwrap();
            assert_eq!(p, ns.join("a-scaling"));
            assert_eq!(names(&p), ["Kptfile", "scaling-patch.yaml"]);
            assert_eq!(fs::read(p.join("Kptfile")).unwrap(), b"kpt\n");
            let mode = fs::metadata(p.join("Kptfile"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                (mode & 0o7777 & !0o644, mode & 0o600),
                (0, 0o600),
                "{mode:o}"
            );
            assert_eq!(names(&ns), ["a-scaling"]);
        }
    }

    #[test]
    fn replaces_the_whole_old_package() {
        let d = tempfile::tempdir().unwrap();
        let five: Vec<(&[u8], &[u8])> = vec![
            (b"Kptfile", b"old"),
            (b"README.md", b"old"),
            (b"scaling-patch.yaml", b"old"),
        ];
        write_package(d.path(), OsStr::new("p"), &five, false).unwrap();
        let p = write_package(d.path(), OsStr::new("p"), &TWO, true).unwrap();
        assert_eq!(names(&p), ["Kptfile", "scaling-patch.yaml"]);
        assert_eq!(fs::read(p.join("Kptfile")).unwrap(), b"kpt\n");
        assert_eq!(names(d.path()), ["p"]);
        // A file where the package goes is swapped out and removed as well.
        fs::remove_dir_all(&p).unwrap();
        fs::write(&p, b"a file").unwrap();
        write_package(d.path(), OsStr::new("p"), &TWO, false).unwrap();
        assert!(p.is_dir() && names(d.path()) == ["p"]);
    }

    #[test]
    fn errors_leave_nothing_and_keep_the_old_package() {
        let d = tempfile::tempdir().unwrap();
        let blocker = d.path().join("blocker");
        fs::write(&blocker, b"x").unwrap();
        let e = write_package(&blocker.join("ns"), OsStr::new("p"), &TWO, false).unwrap_err();
        assert_eq!(e.errno, libc::ENOTDIR);
        assert_eq!(e.msg, "Not a directory");
        assert!(Path::new(&e.filename).starts_with(&blocker), "{e}");
        write_package(d.path(), OsStr::new("p"), &TWO, false).unwrap();
        // The same file twice: EEXIST on the second, the temp dir goes, the old package stays.
        let twice: [(&[u8], &[u8]); 2] = [(b"Kptfile", b"new"), (b"Kptfile", b"new")];
        let e = write_package(d.path(), OsStr::new("p"), &twice, true).unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert!(e.to_string().contains("Kptfile"), "{e}");
        assert_eq!(names(d.path()), ["blocker", "p"]);
        assert_eq!(fs::read(d.path().join("p/Kptfile")).unwrap(), b"kpt\n");
        let bad: [(&[u8], &[u8]); 1] = [(b"../escape", b"")];
        let e = write_package(d.path(), OsStr::new("p"), &bad, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Value);
        let e = write_package(d.path(), OsStr::new("a/b"), &TWO, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Value);
        assert_eq!(names(d.path()), ["blocker", "p"]);
    }

    #[test]
    fn install_without_exchange_moves_the_old_one_aside() {
        let d = tempfile::tempdir().unwrap();
        let (tmp, fin) = (d.path().join(".p.tmp-1"), d.path().join("p"));
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("new"), b"").unwrap();
        fs::create_dir(&fin).unwrap();
        fs::write(fin.join("old"), b"").unwrap();
        let no_exchange = |a: &Path, _: &Path| Err(CoreError::os(libc::EINVAL, "x", a));
        install_with(&tmp, &fin, no_exchange).unwrap();
        assert_eq!(names(&fin), ["new"]);
        assert_eq!(names(d.path()), ["p"]);
    }

    #[test]
    fn install_retries_when_the_old_one_vanishes() {
        let d = tempfile::tempdir().unwrap();
        let (tmp, fin) = (d.path().join(".p.tmp-1"), d.path().join("p"));
        fs::create_dir(&tmp).unwrap();
        fs::create_dir(&fin).unwrap();
        fs::write(fin.join("old"), b"").unwrap();
        let calls = Cell::new(0);
        let vanish = |a: &Path, b: &Path| {
            calls.set(calls.get() + 1);
            fs::remove_dir_all(b).unwrap();
            Err(CoreError::os(libc::ENOENT, "x", a))
        };
        install_with(&tmp, &fin, vanish).unwrap();
        assert_eq!((calls.get(), names(d.path())), (1, vec!["p".to_owned()]));
        // A target that keeps changing: EBUSY after the tries, the temp left for the caller.
        fs::create_dir(&tmp).unwrap();
        fs::write(fin.join("x"), b"").unwrap();
        let never = |a: &Path, _: &Path| Err(CoreError::os(libc::ENOENT, "x", a));
        let e = install_with(&tmp, &fin, never).unwrap_err();
        assert_eq!(e.errno, libc::EBUSY);
        assert!(e.msg.contains("kept changing"));
    }

    #[test]
    fn remove_tree_takes_anything_and_never_follows() {
        let d = tempfile::tempdir().unwrap();
        let keep = d.path().join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("f"), b"").unwrap();
        std::os::unix::fs::symlink(&keep, d.path().join("link")).unwrap();
        remove_tree(&d.path().join("link"));
        remove_tree(&d.path().join("missing"));
        fs::write(d.path().join("file"), b"").unwrap();
        remove_tree(&d.path().join("file"));
        assert_eq!(names(d.path()), ["keep"]);
        assert_eq!(names(&keep), ["f"]);
        remove_tree(&keep);
        assert!(names(d.path()).is_empty());
    }
}
