//! The error type shared by every plain-Rust module of the core.
//!
//! A [`CoreError`] always carries an errno and the path(s) involved, so that the PyO3 layer can
//! turn it into an `OSError` (or one of its subclasses) with `errno` and `filename` set.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

/// Which Python exception class an error maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A plain `OSError` (Python picks the errno subclass, e.g. `FileNotFoundError`).
    Os,
    /// `NotRegularFile`: a symlink, FIFO, socket, device or directory.
    NotRegular,
    /// `FileTooLarge`: bigger than the allowed maximum (errno `EFBIG`).
    TooLarge,
    /// `ValueError`: a bad argument (e.g. a name with a slash).
    Value,
    /// `LinkInPath`: a directory below an anchor is a symbolic link or not a directory (refused).
    LinkInPath,
}

/// An I/O error with errno, operation and path(s).
#[derive(Debug, Clone)]
pub struct CoreError {
    pub kind: ErrorKind,
    pub errno: i32,
    pub msg: String,
    pub filename: OsString,
    pub filename2: Option<OsString>,
}

impl CoreError {
    /// An `OSError` from an errno for `op` on `path`.
    pub fn os(errno: i32, op: &str, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::Os,
            errno,
            msg: format!("{} ({op})", strerror(errno)),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// An `OSError` whose text is the C library's alone, as Python's `os` functions give it
    /// (`strerror` is what callers show; the path is in `filename`).
    pub fn plain(errno: i32, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::Os,
            errno,
            msg: strerror(errno),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// From a rustix errno.
    pub fn rx(err: rustix::io::Errno, op: &str, path: &Path) -> Self {
        Self::os(err.raw_os_error(), op, path)
    }

    /// From a `std::io::Error` (EIO when it carries no errno).
    pub fn io(err: &std::io::Error, op: &str, path: &Path) -> Self {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        let mut e = Self::os(errno, op, path);
        if err.raw_os_error().is_none() {
            e.msg = format!("{err} ({op})");
        }
        e
    }

    /// `NotRegularFile` with the given errno and description of what was found.
    pub fn not_regular(errno: i32, what: &str, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::NotRegular,
            errno,
            msg: format!("not a regular file: {what}"),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// `FileTooLarge` (errno EFBIG).
    pub fn too_large(size: u64, max: u64, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::TooLarge,
            errno: libc::EFBIG,
            msg: format!("file too large: {size} bytes > max_size {max}"),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// `LinkInPath`: resolving `path` below the anchor `root` met a symlink (ELOOP) or a
    /// non-directory (ENOTDIR); nothing was followed.
    pub fn link_in_path(errno: i32, root: &Path, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::LinkInPath,
            errno,
            msg: format!(
                "{}: a symbolic link or non-directory below {}, never followed",
                strerror(errno),
                root.display()
            ),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// A bad argument (`ValueError` in Python, EINVAL).
    pub fn value(msg: &str, path: &Path) -> Self {
        CoreError {
            kind: ErrorKind::Value,
            errno: libc::EINVAL,
            msg: msg.to_owned(),
            filename: path.as_os_str().to_owned(),
            filename2: None,
        }
    }

    /// Attach a second path (e.g. the destination of a rename).
    pub fn with_filename2(mut self, p: &Path) -> Self {
        self.filename2 = Some(p.as_os_str().to_owned());
        self
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[Errno {}] {}: {:?}",
            self.errno,
            self.msg,
            Path::new(&self.filename)
        )?;
        if let Some(f2) = &self.filename2 {
            write!(f, " -> {:?}", Path::new(f2))?;
        }
        Ok(())
    }
}

impl std::error::Error for CoreError {}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, CoreError>;

/// The C library's text for an errno.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    // std formats "No such file or directory (os error 2)"; keep the text only.
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_contains_path_and_errno() {
        let e = CoreError::os(libc::ENOENT, "open", Path::new("/nope/x"));
        let s = e.to_string();
        assert!(s.contains("/nope/x"), "{s}");
        assert!(s.contains("Errno 2"), "{s}");
        assert!(s.contains("No such file"), "{s}");
        let e2 = e.with_filename2(Path::new("/other"));
        assert!(e2.to_string().contains("/other"));
    }

    #[test]
    fn kinds() {
        let p = Path::new("/p");
        assert_eq!(CoreError::too_large(2, 1, p).errno, libc::EFBIG);
        assert_eq!(
            CoreError::not_regular(libc::ELOOP, "symlink", p).kind,
            ErrorKind::NotRegular
        );
        assert_eq!(CoreError::value("bad", p).kind, ErrorKind::Value);
        let l = CoreError::link_in_path(libc::ELOOP, Path::new("/h"), Path::new("/h/status"));
        assert_eq!((l.kind, l.errno), (ErrorKind::LinkInPath, libc::ELOOP));
        assert!(
            l.to_string().contains("/h/status") && l.msg.contains("below /h"),
            "{l}"
        );
        let io = std::io::Error::other("custom");
        let e = CoreError::io(&io, "copy", p);
        assert_eq!(e.errno, libc::EIO);
        assert!(e.msg.contains("custom"));
    }
}
