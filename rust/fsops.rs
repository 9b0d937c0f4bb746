//! Crash-safe file operations: no-clobber moves (also across filesystems), atomic directory
//! exchange, `syncfs` and directory fsync; the temp names they and atomic writes
//! ([`crate::atomic`]) use.
//!
//! Temp files are always hidden (leading `.`) and carry a marker so that recovery code can find
//! leftovers: `.<name>.cl-move-<pid>-<rand>.tmp` for cross-filesystem moves and
//! `.<name>.cl-tmp-<pid>-<rand>.tmp` for atomic writes (see [`MOVE_TEMP_MARKER`],
//! [`ATOMIC_TEMP_MARKER`], [`TEMP_SUFFIX`]). When `<name>` is too long for NAME_MAX it is
//! shortened by [`crate::names::fit_name`] (`<prefix>~<16 hex digits>`).

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{CoreError, Result};
use crate::names::{fit_name, NAME_MAX};
use rustix::fs::Timespec;
use rustix::fs::{
    fchmod, fstat, futimens, linkat, open, openat, renameat_with, statat, unlinkat, AtFlags,
    FileType, Mode, OFlags, RenameFlags, Stat, Timestamps, CWD,
};
use rustix::io::Errno;

/// Marker inside the hidden temp name of a cross-filesystem move.
pub const MOVE_TEMP_MARKER: &str = ".cl-move-";
/// Marker inside the hidden temp name of `write_atomic`.
pub const ATOMIC_TEMP_MARKER: &str = ".cl-tmp-";
/// Suffix of every temp file the core creates.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Give up after this many conflicting candidate names (never reached in practice).
const MAX_CANDIDATES: u64 = 1_000_000;

pub(crate) fn join_bytes(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// Split a file name before its last extension: `intent-a.json` → (`intent-a`, `.json`).
/// A leading dot does not start an extension; an extension longer than 32 bytes is not one.
pub fn split_ext(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 && name.len() - i <= 32 => name.split_at(i),
        _ => (name, &[]),
    }
}

/// UTC civil date from days since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `.YYYYmmddTHHMMSS.mmmZ` for a time in milliseconds since the epoch (UTC).
pub fn timestamp_suffix(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        ".{y:04}{mo:02}{d:02}T{:02}{:02}{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The k-th candidate name for `name`: k = 0 is `name` itself (shortened if needed), k = 1 adds
/// the timestamp before the extension, k ≥ 2 adds the timestamp and a counter. A name too long
/// for NAME_MAX keeps a prefix of its stem and `~<hash of the stem>` (see [`fit_name`]).
pub fn candidate_name(name: &[u8], k: u64, ts: &str) -> Vec<u8> {
    let (stem, ext) = split_ext(name);
    let middle = match k {
        0 => String::new(),
        1 => ts.to_owned(),
        _ => format!("{ts}.{k}"),
    };
    // The extension (≤ 32 bytes), timestamp and counter always leave room; were they not to,
    // the full name is returned and the kernel's ENAMETOOLONG reaches the caller.
    fit_name(stem, &[middle.as_bytes(), ext].concat(), NAME_MAX).unwrap_or_else(|| name.to_vec())
}

/// A random-enough token for temp names: 12 lowercase hex digits (O_EXCL makes collisions harmless anyway).
pub(crate) fn rand_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Hidden temp name `.<name><marker><pid>-<rand>.tmp`, at most NAME_MAX bytes (a long `<name>`
/// is shortened by [`fit_name`]).
pub fn temp_name(name: &[u8], marker: &str) -> Vec<u8> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    temp_name_of(name, marker, pid, &rand_token())
}

/// The temp name [`temp_name`] gives `name` in process `pid` with the random part `token`.
pub(crate) fn temp_name_of(name: &[u8], marker: &str, pid: i32, token: &str) -> Vec<u8> {
    let tail = format!("{marker}{pid}-{token}{TEMP_SUFFIX}");
    let mut short = Vec::with_capacity(NAME_MAX);
    short.push(b'.');
    // The tail is at most ~50 bytes, so there is always room; the fallback is never taken.
    match fit_name(name, tail.as_bytes(), NAME_MAX - 1) {
        Some(n) => short.extend_from_slice(&n),
        None => short.extend_from_slice(tail.as_bytes()),
    }
    short
}

/// Check a bare file name (no slash, not empty, not `.` / `..`).
pub(crate) fn check_name(name: &[u8], path: &Path) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(CoreError::value(
            "invalid file name (empty, '.', '..' or contains '/')",
            path,
        ));
    }
    Ok(())
}

/// Parent directory and final component of `path` (parent `.` when there is none).
pub(crate) fn split_path(path: &Path) -> Result<(PathBuf, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| CoreError::value("path has no file name", path))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd> {
    open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CoreError::rx(e, "open directory", path))
}

/// Removes a temp file on drop unless disarmed.
pub(crate) struct TempGuard<'a> {
    dir: BorrowedFd<'a>,
    name: Vec<u8>,
    armed: bool,
}

impl TempGuard<'_> {
    /// The temp file's name, no longer removed on drop (its new owner removes it, or keeps it).
    pub(crate) fn disarm(mut self) -> Vec<u8> {
        self.armed = false;
        std::mem::take(&mut self.name)
    }
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = unlinkat(self.dir, OsStr::from_bytes(&self.name), AtFlags::empty());
        }
    }
}

/// Create a new hidden temp file in `dir` (O_EXCL), returning the file and a guard removing it.
pub(crate) fn create_temp<'a>(
    dir: BorrowedFd<'a>,
    dir_path: &Path,
    name: &[u8],
    marker: &str,
    mode: u32,
) -> Result<(File, TempGuard<'a>)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut last = Errno::EXIST;
    for _ in 0..100 {
        let tmp = temp_name(name, marker);
        match openat(
            dir,
            OsStr::from_bytes(&tmp),
            flags,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => {
                let guard = TempGuard {
                    dir,
                    name: tmp,
                    armed: true,
                };
                return Ok((File::from(fd), guard));
            }
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(e) => {
                return Err(CoreError::rx(
                    e,
                    "create temp file",
                    &join_bytes(dir_path, &tmp),
                ))
            }
        }
    }
    Err(CoreError::rx(
        last,
        "create temp file",
        &join_bytes(dir_path, name),
    ))
}

/// Rename `from` (in `from_dir`) to the first free candidate name in `dst` without replacing
/// anything. Returns the chosen name. `Err(EXDEV)` is returned raw so the caller can copy.
fn rename_noclobber(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    dst: BorrowedFd<'_>,
    name: &[u8],
) -> std::result::Result<Vec<u8>, (Errno, Vec<u8>)> {
    let mut ts: Option<String> = None;
    let mut k = 0;
    let mut use_link = false;
    while k < MAX_CANDIDATES {
        let stamp = ts.get_or_insert_with(|| timestamp_suffix(now_millis()));
        let cand = candidate_name(name, k, if k == 0 { "" } else { stamp });
        let target = OsStr::from_bytes(&cand);
        let r = if use_link {
            linkat(from_dir, from, dst, target, AtFlags::empty())
                .and_then(|()| unlinkat(from_dir, from, AtFlags::empty()))
        } else {
            renameat_with(from_dir, from, dst, target, RenameFlags::NOREPLACE)
        };
        match r {
            Ok(()) => return Ok(cand),
            Err(Errno::EXIST) => {
                if k == 0 {
                    // The timestamp of the first conflict names every later candidate.
                    ts = Some(timestamp_suffix(now_millis()));
                }
                k += 1;
            }
            // Filesystems without RENAME_NOREPLACE: link(2) never replaces either.
            Err(Errno::INVAL | Errno::NOSYS) if !use_link => use_link = true,
            Err(e) => return Err((e, cand)),
        }
    }
    Err((Errno::EXIST, name.to_vec()))
}

fn check_regular(st: &Stat, path: &Path) -> Result<()> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(CoreError::not_regular(libc::ELOOP, "symbolic link", path)),
        FileType::Directory => Err(CoreError::not_regular(libc::EISDIR, "directory", path)),
        _ => Err(CoreError::not_regular(libc::EINVAL, "special file", path)),
    }
}

/// Move `src` into `dst_dir` as `name` (default: the basename of `src`) without ever replacing
/// an existing file; see the module documentation for conflict names. Returns the final path.
///
/// On one filesystem any kind of file moves by `rename(2)`, which never follows a symlink or opens
/// a FIFO: a hostile "intent" (link, FIFO, directory) is filed as what it is. Across filesystems
/// only regular files are copied; anything else is refused with `NotRegularFile`.
pub fn move_noclobber(src: &Path, dst_dir: &Path, name: Option<&OsStr>) -> Result<OsString> {
    let (src_parent, src_name) = split_path(src)?;
    let name = name.unwrap_or(&src_name);
    check_name(name.as_bytes(), &dst_dir.join(name))?;
    let src_dir = open_dir(&src_parent)?;
    let dst = open_dir(dst_dir)?;
    let from = At::new(src_dir.as_fd(), &src_parent);
    move_at(from, &src_name, At::new(dst.as_fd(), dst_dir), name)
}

/// A directory held open, with the path it is shown as in error messages.
#[derive(Clone, Copy)]
pub struct At<'a> {
    /// The directory's descriptor.
    pub fd: BorrowedFd<'a>,
    /// Its path, for messages and returned paths only (never resolved again).
    pub path: &'a Path,
}

impl<'a> At<'a> {
    /// A directory descriptor shown as `path`.
    pub fn new(fd: BorrowedFd<'a>, path: &'a Path) -> Self {
        At { fd, path }
    }

    fn join(&self, name: &[u8]) -> PathBuf {
        join_bytes(self.path, name)
    }
}

/// [`move_noclobber`] between two directories already open: `src_name` in `from` to `name` in
/// `to`. Nothing is resolved by path: the caller decides how the directories were reached.
pub fn move_at(from: At<'_>, src_name: &OsStr, to: At<'_>, name: &OsStr) -> Result<OsString> {
    let name = name.as_bytes();
    check_name(name, &to.join(name))?;
    let src = from.join(src_name.as_bytes());
    check_name(src_name.as_bytes(), &src)?;
    statat(from.fd, src_name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| CoreError::rx(e, "lstat", &src))?;
    match rename_noclobber(from.fd, src_name, to.fd, name) {
        Ok(final_name) => Ok(to.join(&final_name).into_os_string()),
        Err((Errno::XDEV, _)) => copy_move(from, src_name, to, name),
        Err((e, cand)) => Err(CoreError::rx(e, "rename", &src).with_filename2(&to.join(&cand))),
    }
}

fn copy_times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// The cross-filesystem half of [`move_noclobber`]: copy to a hidden temp file in `to`, keep
/// mode and times, fsync, rename no-clobber into place, fsync `to`, unlink the source, fsync its dir.
fn copy_move(from: At<'_>, src_name: &OsStr, to: At<'_>, name: &[u8]) -> Result<OsString> {
    let src = from.join(src_name.as_bytes());
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let sfd = openat(from.fd, src_name, flags, Mode::empty()).map_err(|e| {
        if e == Errno::LOOP || e == Errno::NXIO {
            CoreError::not_regular(e.raw_os_error(), "not a regular file", &src)
        } else {
            CoreError::rx(e, "open", &src)
        }
    })?;
    let st = fstat(&sfd).map_err(|e| CoreError::rx(e, "fstat", &src))?;
    check_regular(&st, &src)?;
    let (mut tmp, mut guard) = create_temp(to.fd, to.path, name, MOVE_TEMP_MARKER, 0o600)?;
    let tmp_path = to.join(&guard.name);
    let mut sfile = File::from(sfd);
    std::io::copy(&mut sfile, &mut tmp)
        .map_err(|e| CoreError::io(&e, "copy", &src).with_filename2(&tmp_path))?;
    fchmod(&tmp, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| CoreError::rx(e, "fchmod", &tmp_path))?;
    futimens(&tmp, &copy_times(&st)).map_err(|e| CoreError::rx(e, "futimens", &tmp_path))?;
    rustix::fs::fsync(&tmp).map_err(|e| CoreError::rx(e, "fsync", &tmp_path))?;
    drop(tmp);
    let tmp_name = guard.name.clone();
    let final_name = rename_noclobber(to.fd, OsStr::from_bytes(&tmp_name), to.fd, name).map_err(
        |(e, cand)| CoreError::rx(e, "rename", &tmp_path).with_filename2(&to.join(&cand)),
    )?;
    guard.armed = false;
    let final_path = to.join(&final_name);
    rustix::fs::fsync(to.fd).map_err(|e| CoreError::rx(e, "fsync directory", to.path))?;
    // Unlink the source only if it is still the file we copied (not a newcomer of that name).
    match statat(from.fd, src_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {
            unlinkat(from.fd, src_name, AtFlags::empty()).map_err(|e| {
                CoreError::rx(e, "unlink source after copy", &src).with_filename2(&final_path)
            })?;
            rustix::fs::fsync(from.fd)
                .map_err(|e| CoreError::rx(e, "fsync directory", from.path))?;
        }
        _ => {}
    }
    Ok(final_path.into_os_string())
}

/// Atomically swap two paths (`renameat2(RENAME_EXCHANGE)`); both must exist.
pub fn rename_exchange(a: &Path, b: &Path) -> Result<()> {
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| CoreError::rx(e, "rename exchange", a).with_filename2(b))
}

/// `syncfs(2)` on the filesystem holding `path`.
pub fn syncfs(path: &Path) -> Result<()> {
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| CoreError::rx(e, "open", path))?;
    rustix::fs::syncfs(&fd).map_err(|e| CoreError::rx(e, "syncfs", path))
}

/// fsync a directory so that renames and unlinks in it are durable.
pub fn fsync_dir(path: &Path) -> Result<()> {
    let fd = open_dir(path)?;
    rustix::fs::fsync(&fd).map_err(|e| CoreError::rx(e, "fsync directory", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_suffix(0), ".19700101T000000.000Z");
        // 2026-01-15T10:15:02.123Z
        assert_eq!(timestamp_suffix(1_768_472_102_123), ".20260115T101502.123Z");
        // leap day 2024-02-29T23:59:59.999Z
        assert_eq!(timestamp_suffix(1_709_251_199_999), ".20240229T235959.999Z");
    }

    #[test]
    fn candidates() {
        let ts = ".20260115T101502.123Z";
        assert_eq!(candidate_name(b"intent-a.json", 0, ts), b"intent-a.json");
        assert_eq!(
            candidate_name(b"intent-a.json", 1, ts),
            b"intent-a.20260115T101502.123Z.json"
        );
        assert_eq!(
            candidate_name(b"intent-a.json", 2, ts),
            b"intent-a.20260115T101502.123Z.2.json"
        );
        assert_eq!(
            candidate_name(b"noext", 1, ts),
            b"noext.20260115T101502.123Z"
        );
        assert_eq!(split_ext(b".hidden"), (&b".hidden"[..], &b""[..]));
    }

    #[test]
    fn long_names_shortened_distinct() {
        let ts = ".20260115T101502.123Z";
        let long = format!("{}.json", "é".repeat(126)); // 252 + 5 bytes
        let mut seen = std::collections::HashSet::new();
        for k in 0..5 {
            let c = candidate_name(long.as_bytes(), k, ts);
            assert!(c.len() <= NAME_MAX, "{}", c.len());
            assert!(std::str::from_utf8(&c).is_ok());
            assert!(c.ends_with(b".json"));
            assert!(seen.insert(c));
        }
        let t = temp_name(long.as_bytes(), MOVE_TEMP_MARKER);
        assert!(t.len() <= NAME_MAX && t.starts_with(b".") && t.ends_with(b".tmp"));
        let short = temp_name(b"intent-a.json", ATOMIC_TEMP_MARKER);
        let s = String::from_utf8(short).unwrap();
        assert!(s.starts_with(".intent-a.json.cl-tmp-"), "{s}");
    }

    #[test]
    fn move_same_fs_and_conflicts() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("out");
        fs::create_dir(&dst).unwrap();
        let mut finals = Vec::new();
        for i in 0..4 {
            let src = d.path().join("intent-a.json");
            fs::write(&src, format!("v{i}")).unwrap();
            let f = PathBuf::from(move_noclobber(&src, &dst, None).unwrap());
            assert!(!src.exists());
            assert_eq!(fs::read_to_string(&f).unwrap(), format!("v{i}"));
            finals.push(f);
        }
        assert_eq!(finals[0], dst.join("intent-a.json"));
        let n1 = finals[1].file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            n1.starts_with("intent-a.") && n1.ends_with("Z.json") && n1.len() == 34,
            "{n1}"
        );
        let n2 = finals[2].file_name().unwrap().to_str().unwrap().to_owned();
        assert!(n2.ends_with("Z.2.json") || n2.ends_with("Z.json"), "{n2}");
        let set: std::collections::HashSet<_> = finals.iter().collect();
        assert_eq!(set.len(), 4);
        // explicit name
        let src = d.path().join("x");
        fs::write(&src, "x").unwrap();
        let f = move_noclobber(&src, &dst, Some(OsStr::new("renamed.json"))).unwrap();
        assert_eq!(PathBuf::from(f), dst.join("renamed.json"));
    }

    #[test]
    fn move_errors() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("out");
        fs::create_dir(&dst).unwrap();
        let target = d.path().join("t");
        fs::write(&target, "t").unwrap();
        let link = d.path().join("l");
        symlink(&target, &link).unwrap();
        // Same filesystem: the link itself is renamed, never followed.
        let moved = PathBuf::from(move_noclobber(&link, &dst, None).unwrap());
        assert!(fs::symlink_metadata(&moved)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "t");
        let e = move_noclobber(d.path().join("missing").as_path(), &dst, None).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("missing"));
        let e = move_noclobber(&target, &d.path().join("nodir"), None).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        let e = move_noclobber(&target, &dst, Some(OsStr::new("a/b"))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Value);
    }

    #[test]
    fn move_across_filesystems() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let s = tempfile::tempdir_in(shm).unwrap();
        let d = tempfile::tempdir().unwrap();
        let src = s.path().join("intent-x.json");
        fs::write(&src, b"hello across").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
        let mtime = Timestamps {
            last_access: Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 5,
            },
            last_modification: Timespec {
                tv_sec: 1_600_000_001,
                tv_nsec: 123_456_789,
            },
        };
        rustix::fs::utimensat(CWD, &src, &mtime, AtFlags::empty()).unwrap();
        fs::write(d.path().join("intent-x.json"), b"already").unwrap();
        let f = PathBuf::from(move_noclobber(&src, d.path(), None).unwrap());
        assert!(!src.exists());
        assert_ne!(f, d.path().join("intent-x.json"));
        assert_eq!(fs::read(&f).unwrap(), b"hello across");
        let md = fs::metadata(&f).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o640);
        assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_001, 123_456_789));
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names
            .iter()
            .all(|n| !n.to_string_lossy().contains(MOVE_TEMP_MARKER)));
    }

    #[test]
    fn exchange_sync_fsync() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        fs::create_dir(&a).unwrap();
        fs::write(a.join("f"), "A").unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(b.join("f"), "B").unwrap();
        rename_exchange(&a, &b).unwrap();
        assert_eq!(fs::read_to_string(a.join("f")).unwrap(), "B");
        assert_eq!(fs::read_to_string(b.join("f")).unwrap(), "A");
        let e = rename_exchange(&a, &d.path().join("missing")).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("missing"));
        syncfs(d.path()).unwrap();
        syncfs(&a.join("f")).unwrap();
        fsync_dir(d.path()).unwrap();
        assert_eq!(
            syncfs(&d.path().join("nope")).unwrap_err().errno,
            libc::ENOENT
        );
        assert_eq!(fsync_dir(&a.join("f")).unwrap_err().errno, libc::ENOTDIR);
    }
}
