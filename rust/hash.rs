//! Streamed SHA-256 of regular files, never following symlinks and never blocking on FIFOs.
//!
//! `sha2` picks the SHA-NI (x86) / SHA2 (aarch64) instructions at run time when the CPU has them.

use std::fs::File;
use std::io::{ErrorKind as IoKind, Read};
use std::path::{Path, PathBuf};

use rustix::fs::{fstat, open, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// Size of the one read buffer each hashing thread reuses.
pub const BUF_SIZE: usize = 128 * 1024;

/// One hashing result.
pub type HashResult = Result<(String, u64)>;

/// Paths handed to one worker thread at a time by [`sha256_files`].
const CHUNK: usize = 32;

/// Lower-case hex of a byte slice.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Describe a non-regular file type, with the errno used for `NotRegularFile`.
fn describe(ft: FileType) -> (i32, &'static str) {
    match ft {
        FileType::Directory => (libc::EISDIR, "directory"),
        FileType::Symlink => (libc::ELOOP, "symbolic link"),
        FileType::Fifo => (libc::EINVAL, "FIFO"),
        FileType::Socket => (libc::EINVAL, "socket"),
        FileType::CharacterDevice => (libc::EINVAL, "character device"),
        FileType::BlockDevice => (libc::EINVAL, "block device"),
        _ => (libc::EINVAL, "unknown file type"),
    }
}

/// Open `path` read-only without following a final symlink and without blocking (FIFOs), and
/// check with `fstat` that it is a regular file. Returns the file and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = open(path, flags, Mode::empty()).map_err(|e| {
        if e == Errno::LOOP {
            CoreError::not_regular(libc::ELOOP, "symbolic link", path)
        } else if e == Errno::NXIO {
            // open(2) of a socket (or a device without a driver)
            CoreError::not_regular(libc::ENXIO, "socket or device", path)
        } else {
            CoreError::rx(e, "open", path)
        }
    })?;
    let st = fstat(&fd).map_err(|e| CoreError::rx(e, "fstat", path))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::RegularFile {
        let (errno, what) = describe(ft);
        return Err(CoreError::not_regular(errno, what, path));
    }
    Ok((File::from(fd), st.st_size as u64))
}

/// Read into `buf`, retrying on EINTR.
fn read_retry(f: &mut File, buf: &mut [u8], path: &Path) -> Result<usize> {
    loop {
        match f.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) => return Err(CoreError::io(&e, "read", path)),
        }
    }
}

/// Files at least this large are hashed by [`sha256_file`] with reading and hashing overlapped
/// on two threads.
pub const PIPELINE_MIN: u64 = 16 * 1024 * 1024;
/// Buffer size of the pipelined reader (three buffers rotate between the two threads).
const PIPE_BUF: usize = 1024 * 1024;

/// Fill `buf` as far as the file allows (fewer bytes only at end of file).
fn read_full(f: &mut File, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = read_retry(f, &mut buf[n..], path)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// Hash the rest of `f`, reading on this thread and hashing on a helper thread.
fn hash_pipelined(f: &mut File, max_size: Option<u64>, path: &Path) -> Result<(String, u64)> {
    use std::sync::mpsc::sync_channel;
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(2);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; PIPE_BUF]);
    }
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut h = Sha256::new();
            while let Ok((buf, n)) = full_rx.recv() {
                h.update(&buf[..n]);
                // The reader may have stopped early; a closed channel is fine.
                let _ = empty_tx.send(buf);
            }
            h.finalize()
        });
        let mut total: u64 = 0;
        let read_result: Result<()> = loop {
            let Ok(mut buf) = empty_rx.recv() else {
                break Err(CoreError::os(libc::EIO, "hash thread stopped", path));
            };
            let n = match read_full(f, &mut buf, path) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(());
            }
            total += n as u64;
            if let Some(max) = max_size {
                if total > max {
                    break Err(CoreError::too_large(total, max, path));
                }
            }
            if full_tx.send((buf, n)).is_err() {
                break Err(CoreError::os(libc::EIO, "hash thread stopped", path));
            }
        };
        drop(full_tx);
        let digest = hasher
            .join()
            .map_err(|_| CoreError::os(libc::EIO, "hash thread panicked", path))?;
        read_result.map(|()| (to_hex(&digest), total))
    })
}

/// `sha256_file` with a caller-provided buffer (so a batch reuses one buffer per thread).
pub fn sha256_file_with(
    path: &Path,
    max_size: Option<u64>,
    buf: &mut [u8],
) -> Result<(String, u64)> {
    hash_open(path, max_size, buf, false)
}

fn hash_open(
    path: &Path,
    max_size: Option<u64>,
    buf: &mut [u8],
    pipeline: bool,
) -> Result<(String, u64)> {
    let (mut f, size) = open_regular(path)?;
    if let Some(max) = max_size {
        if size > max {
            return Err(CoreError::too_large(size, max, path));
        }
    }
    if pipeline && size >= PIPELINE_MIN {
        return hash_pipelined(&mut f, max_size, path);
    }
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    loop {
        let n = read_retry(&mut f, buf, path)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if let Some(max) = max_size {
            if total > max {
                // The file grew past the limit while we read it.
                return Err(CoreError::too_large(total, max, path));
            }
        }
        hasher.update(&buf[..n]);
        if n < buf.len() && total == size {
            // A short read that ends exactly at the size fstat reported is the end of file: skip
            // the extra read(2) that would return 0 (it matters for many small files). A file
            // that reports size 0 but has content (procfs) still reads until 0.
            break;
        }
    }
    Ok((to_hex(&hasher.finalize()), total))
}

/// Streamed SHA-256 of a regular file: `(hex digest, size)`.
/// Files of at least [`PIPELINE_MIN`] bytes are read and hashed on two threads.
pub fn sha256_file(path: &Path, max_size: Option<u64>) -> Result<(String, u64)> {
    let mut buf = vec![0u8; BUF_SIZE];
    hash_open(path, max_size, &mut buf, true)
}

/// Read a regular file whole and hash exactly the bytes returned.
pub fn sha256_read(path: &Path, max_size: Option<u64>) -> Result<(String, Vec<u8>)> {
    let (f, size) = open_regular(path)?;
    let limit = match max_size {
        Some(max) if size > max => return Err(CoreError::too_large(size, max, path)),
        Some(max) => max,
        None => u64::MAX - 1,
    };
    // Reserve what fstat promised (plus one byte so a file that did not grow needs no realloc).
    let cap = usize::try_from(size.min(limit))
        .unwrap_or(0)
        .saturating_add(1);
    let mut data = Vec::new();
    data.try_reserve_exact(cap)
        .map_err(|_| CoreError::os(libc::ENOMEM, "allocate", path))?;
    // Read at most limit + 1 bytes: one byte more than allowed proves the file grew too large.
    let mut limited = f.take(limit + 1);
    limited
        .read_to_end(&mut data)
        .map_err(|e| CoreError::io(&e, "read", path))?;
    if data.len() as u64 > limit {
        return Err(CoreError::too_large(data.len() as u64, limit, path));
    }
    let digest = Sha256::digest(&data);
    Ok((to_hex(&digest), data))
}

/// `sha256_file` for many paths on `threads` threads (0: one per CPU), results in input order.
pub fn sha256_files(paths: &[PathBuf], threads: usize) -> Vec<HashResult> {
    crate::par::map_chunked(
        paths,
        threads,
        CHUNK,
        || vec![0u8; BUF_SIZE],
        |buf, p| sha256_file_with(p, None, buf),
        |p| Err(CoreError::os(libc::EIO, "hash worker failed", p)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(data).unwrap();
        p
    }

    #[test]
    fn known_digests() {
        let d = tempfile::tempdir().unwrap();
        let e = write(d.path(), "e", b"");
        let a = write(d.path(), "a", b"abc");
        assert_eq!(sha256_file(&e, None).unwrap(), (EMPTY.to_string(), 0));
        assert_eq!(sha256_file(&a, None).unwrap(), (ABC.to_string(), 3));
        assert_eq!(
            sha256_read(&a, Some(3)).unwrap(),
            (ABC.to_string(), b"abc".to_vec())
        );
        assert_eq!(
            sha256_read(&e, Some(0)).unwrap(),
            (EMPTY.to_string(), vec![])
        );
    }

    #[test]
    fn big_file_crosses_buffers() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * BUF_SIZE + 17)).map(|i| (i % 251) as u8).collect();
        let p = write(d.path(), "big", &data);
        let want = to_hex(&Sha256::digest(&data));
        assert_eq!(
            sha256_file(&p, None).unwrap(),
            (want.clone(), data.len() as u64)
        );
        let (h, bytes) = sha256_read(&p, None).unwrap();
        assert_eq!(h, want);
        assert_eq!(bytes, data);
    }

    #[test]
    fn pipelined_big_file_and_limit() {
        let d = tempfile::tempdir().unwrap();
        let len = PIPELINE_MIN as usize + 3 * PIPE_BUF / 2 + 11;
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let p = write(d.path(), "huge", &data);
        let want = to_hex(&Sha256::digest(&data));
        assert_eq!(sha256_file(&p, None).unwrap(), (want.clone(), len as u64));
        assert_eq!(sha256_file(&p, Some(len as u64)).unwrap().0, want);
        let mut buf = vec![0u8; BUF_SIZE];
        assert_eq!(sha256_file_with(&p, None, &mut buf).unwrap().0, want);
        let mut f = File::open(&p).unwrap();
        let e = hash_pipelined(&mut f, Some(PIPELINE_MIN), &p).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
    }

    #[test]
    fn too_large() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "x", b"0123456789");
        let e = sha256_file(&p, Some(9)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        assert_eq!(e.errno, libc::EFBIG);
        assert!(e.to_string().contains("/x"));
        assert_eq!(
            sha256_read(&p, Some(9)).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        assert!(sha256_file(&p, Some(10)).is_ok());
    }

    #[test]
    fn refuses_non_regular() {
        let d = tempfile::tempdir().unwrap();
        let target = write(d.path(), "t", b"abc");
        let link = d.path().join("l");
        symlink(&target, &link).unwrap();
        let e = sha256_file(&link, None).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::NotRegular, libc::ELOOP));
        let e = sha256_read(&link, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotRegular);
        let e = sha256_file(d.path(), None).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::NotRegular, libc::EISDIR));
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = sha256_file(&fifo, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotRegular);
        assert!(e.msg.contains("FIFO"));
        let sock = d.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = sha256_file(&sock, None).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::NotRegular, libc::ENXIO));
    }

    #[test]
    fn missing_file() {
        let e = sha256_file(Path::new("/nonexistent/zz"), None).unwrap_err();
        assert_eq!((e.kind, e.errno), (ErrorKind::Os, libc::ENOENT));
        assert!(e.to_string().contains("/nonexistent/zz"));
        assert!(sha256_read(Path::new("/nonexistent/zz"), None).is_err());
    }

    #[test]
    fn many_files_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..200 {
            if i % 7 == 3 {
                paths.push(d.path().join(format!("missing-{i}")));
            } else {
                paths.push(write(
                    d.path(),
                    &format!("f{i}"),
                    format!("content {i}").as_bytes(),
                ));
            }
        }
        for threads in [0, 1, 3] {
            let res = sha256_files(&paths, threads);
            assert_eq!(res.len(), paths.len());
            for (i, r) in res.iter().enumerate() {
                if i % 7 == 3 {
                    assert_eq!(r.as_ref().unwrap_err().errno, libc::ENOENT);
                } else {
                    let body = format!("content {i}");
                    let want = to_hex(&Sha256::digest(body.as_bytes()));
                    assert_eq!(r.as_ref().unwrap(), &(want, body.len() as u64));
                }
            }
        }
        assert!(sha256_files(&[], 0).is_empty());
    }
}
