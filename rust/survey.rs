//! The facts a start-up needs of each candidate, gathered in batches with one open per file.
//!
//! [`survey_files`] gives, for every path: its mtime (or that it is gone), whether some process holds it open for writing
//! (the read-lease probe of `lease.rs`), and the scheduling hint in its first bytes (`"priority": N`).
//! The Rust side only reports; what is settled, and in what order it runs, is decided in Python
//! (`conductor_loop.intake`). Nothing here blocks or follows a symlink: the open is
//! `O_NOFOLLOW | O_NONBLOCK`, and anything but a regular file is reported by its `lstat` alone.
//! [`read_small_files`] reads many small files (recovery's status files) the same way.

use std::fs::File;
use std::io::{ErrorKind as IoKind, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{fstat, lstat, open, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::lease;

/// How much of a file the priority hint is looked for in.
pub const PEEK_BYTES: usize = 64 * 1024;

/// Paths per chunk a surveying thread takes.
const CHUNK: usize = 256;

/// What a sweep learns of one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    /// Seconds since the epoch of the last modification; `None` when the file (or its directory) is gone.
    pub mtime: Option<f64>,
    /// Open for writing by some process; `None` when no read lease can be taken on it.
    pub writing: Option<bool>,
    /// `"priority": N` with N in 0..=10 in the first [`PEEK_BYTES`]; `None`: the default applies.
    pub priority: Option<u8>,
}

impl Facts {
    const GONE: Facts = Facts {
        mtime: None,
        writing: Some(false),
        priority: None,
    };
}

fn seconds(st: &Stat) -> f64 {
    st.st_mtime as f64 + st.st_mtime_nsec as f64 * 1e-9
}

/// A file that cannot be opened as a regular file (a link, a socket, unreadable, a write-lease
/// holder's): what its `lstat` says; `writing` as given.
fn by_lstat(path: &Path, writing: bool) -> Facts {
    match lstat(path) {
        Ok(st) => Facts {
            mtime: Some(seconds(&st)),
            writing: Some(writing),
            priority: None,
        },
        Err(_) => Facts::GONE,
    }
}

/// The facts of one candidate (`buf`: a read buffer of at least [`PEEK_BYTES`]).
pub fn survey_file(path: &Path, buf: &mut [u8]) -> Facts {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let file = match open(path, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => return Facts::GONE,
        Err(e) if e == Errno::AGAIN => return by_lstat(path, true), // a write lease holder has it
        Err(_) => return by_lstat(path, false),
    };
    let st = match fstat(&file) {
        Ok(st) => st,
        Err(_) => return by_lstat(path, false),
    };
    let mtime = Some(seconds(&st));
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Facts {
            mtime,
            writing: Some(false),
            priority: None,
        };
    }
    let writing = lease::probe(file.as_raw_fd(), path).unwrap_or(Some(false));
    let priority = read_some(&file, buf).and_then(|n| priority_in(&buf[..n]));
    Facts {
        mtime,
        writing,
        priority,
    }
}

/// One read into `buf` (retried on `EINTR`); `None` when it fails.
fn read_some(mut file: &File, buf: &mut [u8]) -> Option<usize> {
    let limit = buf.len().min(PEEK_BYTES);
    loop {
        match file.read(&mut buf[..limit]) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// [`survey_file`] for every path, on up to `threads` threads (0: one per CPU), in input order.
pub fn survey_files(paths: &[PathBuf], threads: usize) -> Vec<Facts> {
    crate::par::map_chunked(
        paths,
        threads,
        CHUNK,
        || vec![0u8; PEEK_BYTES],
        |buf, p| survey_file(p, buf),
        |_| Facts {
            mtime: None,
            writing: Some(false),
            priority: None,
        },
    )
}

/// The first `limit` bytes of the regular file `path`; `None` when it is gone, is not a regular
/// file (never followed, never blocked on) or cannot be read.
pub fn read_small(path: &Path, limit: usize) -> Option<Vec<u8>> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let file = File::from(open(path, flags, Mode::empty()).ok()?);
    let st = fstat(&file).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut data = Vec::new();
    let want = usize::try_from(st.st_size.max(0))
        .unwrap_or(limit)
        .min(limit);
    data.try_reserve_exact(want.saturating_add(1)).ok()?;
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    loop {
        match (&file).take(limit).read_to_end(&mut data) {
            Ok(_) => return Some(data),
            Err(e) if e.kind() == IoKind::Interrupted => data.clear(),
            Err(_) => return None,
        }
    }
}

/// [`read_small`] for every path, on up to `threads` threads (0: one per CPU), in input order.
pub fn read_small_files(paths: &[PathBuf], limit: usize, threads: usize) -> Vec<Option<Vec<u8>>> {
    crate::par::map_chunked(
        paths,
        threads,
        CHUNK,
        || (),
        |_, p| read_small(p, limit),
        |_| None,
    )
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The priority hint in `data`: the first `"priority"`, optional white space, `:`, optional white
/// space, then 1 to 3 digits that end the word. `Some(N)` when that N is 0..=10, else `None`.
pub fn priority_in(data: &[u8]) -> Option<u8> {
    const KEY: &[u8] = b"\"priority\"";
    let mut from = 0;
    while let Some(at) = find(&data[from..], KEY) {
        let start = from + at;
        from = start + 1;
        if let Some(value) = value_after(&data[start + KEY.len()..]) {
            return u8::try_from(value).ok().filter(|v| *v <= 10);
        }
    }
    None
}

/// The number in `rest` (what follows `"priority"`) when it matches; its value.
fn value_after(rest: &[u8]) -> Option<u32> {
    let mut i = rest.iter().take_while(|b| is_space(**b)).count();
    if rest.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    i += rest[i..].iter().take_while(|b| is_space(**b)).count();
    let digits = rest[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || rest.get(i + digits).is_some_and(|b| is_word(*b)) {
        return None;
    }
    Some(
        rest[i..i + digits]
            .iter()
            .fold(0, |v, d| v * 10 + u32::from(d - b'0')),
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn priority_rule_table() {
        let table: &[(&[u8], Option<u8>)] = &[
            (br#"{"priority": 7}"#, Some(7)),
            (br#"{"priority":0}"#, Some(0)),
            (b"{\"priority\"\t:\n 10 }", Some(10)),
            (br#"{"priority": 11}"#, None),
            (br#"{"priority": 999}"#, None),
            (br#"{"priority": 1000}"#, None),
            (br#"{"priority": 3a}"#, None),
            (br#"{"priority": 3_}"#, None),
            (br#"{"priority": 3.5}"#, Some(3)),
            (br#"{"priority": "high", "x": {"priority": 2}}"#, Some(2)),
            (br#"{"priority": 12, "x": {"priority": 2}}"#, None),
            (br#"{"priority": -1}"#, None),
            (br#"{"priority" 4}"#, None),
            (br#"{"Priority": 4}"#, None),
            (br#"{"priority": 4"#, Some(4)),
            (b"", None),
            (b"\"priority\"", None),
        ];
        for (data, want) in table {
            assert_eq!(
                priority_in(data),
                *want,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    fn survey(p: &Path) -> Facts {
        survey_file(p, &mut vec![0u8; PEEK_BYTES])
    }

    #[test]
    fn a_closed_file_reports_its_mtime_and_priority() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-a.json");
        fs::write(&p, br#"{"priority": 9}"#).unwrap();
        let f = survey(&p);
        let want = fs::metadata(&p).unwrap().modified().unwrap();
        let want = want
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((f.mtime.unwrap() - want).abs() < 1e-6);
        assert_eq!((f.writing, f.priority), (Some(false), Some(9)));
    }

    #[test]
    fn a_file_held_open_for_writing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-a.json");
        let mut w = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&p)
            .unwrap();
        w.write_all(b"{\"half\":").unwrap();
        assert_eq!(survey(&p).writing, Some(true));
        drop(w);
        assert_eq!(survey(&p).writing, Some(false));
    }

    #[test]
    fn gone_links_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(survey(&dir.path().join("missing.json")), Facts::GONE);
        assert_eq!(survey(&dir.path().join("missing/deeper.json")), Facts::GONE);
        let target = dir.path().join("t.json");
        fs::write(&target, br#"{"priority": 1}"#).unwrap();
        let link = dir.path().join("intent-link.json");
        symlink(&target, &link).unwrap();
        let f = survey(&link);
        assert!(
            f.mtime.is_some(),
            "a link is reported by its lstat, not gone"
        );
        assert_eq!((f.writing, f.priority), (Some(false), None));
        let sub = dir.path().join("intent-dir.json");
        fs::create_dir(&sub).unwrap();
        let f = survey(&sub);
        assert!(f.mtime.is_some());
        assert_eq!((f.writing, f.priority), (Some(false), None));
    }

    #[test]
    fn a_fifo_is_never_read_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("intent-fifo.json");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let f = survey(&p);
        assert!(f.mtime.is_some());
        assert_eq!((f.writing, f.priority), (Some(false), None));
    }

    #[test]
    fn a_batch_answers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..600)
            .map(|i| {
                let p = dir.path().join(format!("intent-{i}.json"));
                if i % 3 != 0 {
                    fs::write(&p, format!("{{\"priority\": {}}}", i % 11)).unwrap();
                }
                p
            })
            .collect();
        for threads in [1, 2] {
            let got = survey_files(&paths, threads);
            for (i, f) in got.iter().enumerate() {
                if i % 3 == 0 {
                    assert_eq!(*f, Facts::GONE);
                } else {
                    assert_eq!(f.priority, Some((i % 11) as u8));
                }
            }
        }
    }

    #[test]
    fn small_files_are_read_up_to_the_limit_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.status");
        fs::write(&a, b"0123456789").unwrap();
        let link = dir.path().join("link.status");
        symlink(&a, &link).unwrap();
        let paths = vec![
            a.clone(),
            link,
            dir.path().join("gone.status"),
            dir.path().to_path_buf(),
        ];
        let got = read_small_files(&paths, 4, 2);
        assert_eq!(got, vec![Some(b"0123".to_vec()), None, None, None]);
        assert_eq!(read_small(&a, 100), Some(b"0123456789".to_vec()));
        fs::write(&a, b"").unwrap();
        assert_eq!(read_small(&a, 100), Some(Vec::new()));
    }
}
