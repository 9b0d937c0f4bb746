//! `conductor_loop._core`: the Rust core of conductor-loop, exposed to Python with PyO3.
//!
//! The logic lives in plain-Rust modules that are unit-tested with `cargo test`: [`hash`],
//! [`fsops`] with [`beneath`] (writes and moves below a directory held open), [`package`] (the
//! built-in porch's package directories), [`lease`], [`names`], the settle rule ([`settle`]), the watchers ([`watch`] shared by
//! [`watcher`] (inotify) and [`poll`]) and [`fstype`]. This file and `pywatch.rs` only convert
//! arguments, release the GIL around every blocking call (`py.detach`) and map
//! [`error::CoreError`] to Python `OSError` subclasses.

pub mod atomic;
pub mod beneath;
pub mod error;
pub mod fsops;
pub mod fstype;
pub mod hash;
pub mod lease;
pub mod names;
pub mod package;
pub mod par;
pub mod poll;
mod pyanchor;
mod pyatomic;
mod pywatch;
pub mod settle;
pub mod spawn;
pub mod survey;
pub mod watch;
pub mod watcher;

use std::ffi::OsString;
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::error::{CoreError, ErrorKind};

create_exception!(
    conductor_loop._core,
    NotRegularFile,
    PyOSError,
    "The path is a symlink, FIFO, socket, device or directory (never opened in a blocking way)."
);
create_exception!(
    conductor_loop._core,
    LinkInPath,
    PyOSError,
    "A directory below an ``Anchor`` is a symbolic link or not a directory: refused, nothing written."
);
create_exception!(
    conductor_loop._core,
    FileTooLarge,
    PyOSError,
    "The file is larger than the ``max_size`` the caller allowed (``errno`` is EFBIG)."
);

/// Convert a core error into the matching Python exception (errno and filename set).
pub(crate) fn to_pyerr(e: CoreError) -> PyErr {
    match e.kind {
        ErrorKind::Value => PyValueError::new_err(e.to_string()),
        ErrorKind::NotRegular => NotRegularFile::new_err((e.errno, e.msg, e.filename)),
        ErrorKind::TooLarge => FileTooLarge::new_err((e.errno, e.msg, e.filename)),
        ErrorKind::LinkInPath => LinkInPath::new_err((e.errno, e.msg, e.filename)),
        ErrorKind::Os => match e.filename2 {
            None => PyOSError::new_err((e.errno, e.msg, e.filename)),
            Some(f2) => PyOSError::new_err((e.errno, e.msg, e.filename, Option::<i32>::None, f2)),
        },
    }
}

/// Streamed SHA-256 of a regular file: ``(hex digest, size in bytes)``.
#[pyfunction]
#[pyo3(signature = (path, max_size=None))]
fn sha256_file(py: Python<'_>, path: PathBuf, max_size: Option<u64>) -> PyResult<(String, u64)> {
    py.detach(|| hash::sha256_file(&path, max_size))
        .map_err(to_pyerr)
}

/// Read a regular file whole and hash exactly the bytes returned: ``(hex digest, content)``.
#[pyfunction]
#[pyo3(signature = (path, max_size=None))]
fn sha256_read<'py>(
    py: Python<'py>,
    path: PathBuf,
    max_size: Option<u64>,
) -> PyResult<(String, Bound<'py, PyBytes>)> {
    let (hex, data) = py
        .detach(|| hash::sha256_read(&path, max_size))
        .map_err(to_pyerr)?;
    Ok((hex, PyBytes::new(py, &data)))
}

/// A Python sequence of paths as owned paths (a single ``str`` or ``bytes`` is refused).
fn path_list(paths: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if paths.is_instance_of::<PyString>() || paths.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "paths must be a sequence of paths, not a single string",
        ));
    }
    let mut owned: Vec<PathBuf> = Vec::with_capacity(paths.len().unwrap_or(0));
    for item in paths.try_iter()? {
        let item = item?;
        // Fast path: a str that is valid UTF-8 (no surrogate escapes) is used as is.
        let fast = match item.cast::<PyString>() {
            Ok(s) => s.to_str().ok().map(PathBuf::from),
            Err(_) => None,
        };
        owned.push(match fast {
            Some(p) => p,
            None => item.extract::<PathBuf>()?,
        });
    }
    Ok(owned)
}

/// ``sha256_file`` for many paths in parallel; per path a result or the exception object, in order.
#[pyfunction]
#[pyo3(signature = (paths, threads=0))]
fn sha256_files(
    py: Python<'_>,
    paths: &Bound<'_, PyAny>,
    threads: usize,
) -> PyResult<Vec<Py<PyAny>>> {
    let paths = path_list(paths)?;
    let results = py.detach(|| hash::sha256_files(&paths, threads));
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        let obj = match r {
            Ok(pair) => pair.into_pyobject(py)?.into_any().unbind(),
            Err(e) => to_pyerr(e).into_value(py).into_any(),
        };
        out.push(obj);
    }
    Ok(out)
}

/// Move ``src`` into ``dst_dir`` (as ``name``) without ever overwriting; returns the final path.
#[pyfunction]
#[pyo3(signature = (src, dst_dir, name=None))]
fn move_noclobber(
    py: Python<'_>,
    src: PathBuf,
    dst_dir: PathBuf,
    name: Option<PathBuf>,
) -> PyResult<OsString> {
    py.detach(|| fsops::move_noclobber(&src, &dst_dir, name.as_deref().map(|n| n.as_os_str())))
        .map_err(to_pyerr)
}

/// Write ``data`` atomically to ``path`` (temp file, fsync, rename, fsync directory); the file is
/// created with ``mode`` (less the umask).
#[pyfunction]
#[pyo3(signature = (path, data, fsync=true, mode=0o666))]
fn write_atomic(
    py: Python<'_>,
    path: PathBuf,
    data: &[u8],
    fsync: bool,
    mode: u32,
) -> PyResult<()> {
    py.detach(|| atomic::write_atomic(&path, data, fsync, mode))
        .map_err(to_pyerr)
}

/// Remove what killed atomic writers of ``path`` left beside it (temp names of processes that are
/// gone); how many were removed.
#[pyfunction]
fn remove_dead_temps(py: Python<'_>, path: PathBuf) -> PyResult<usize> {
    py.detach(|| atomic::remove_dead_temps(&path))
        .map_err(to_pyerr)
}

/// Atomically swap two paths (``renameat2(RENAME_EXCHANGE)``).
#[pyfunction]
fn rename_exchange(py: Python<'_>, a: PathBuf, b: PathBuf) -> PyResult<()> {
    py.detach(|| fsops::rename_exchange(&a, &b))
        .map_err(to_pyerr)
}

/// Write the package ``name`` (``files``: file name and content) under ``ns_dir`` and return its path:
/// a hidden temp directory ``.<name>.tmp-<12 hex>`` beside it, filled, then renamed into place or swapped
/// with the old package (``RENAME_EXCHANGE``), which is removed. ``durable`` fsyncs files and directories.
#[pyfunction]
fn write_package(
    py: Python<'_>,
    ns_dir: PathBuf,
    name: OsString,
    files: Vec<(OsString, Bound<'_, PyBytes>)>,
    durable: bool,
) -> PyResult<OsString> {
    use std::os::unix::ffi::OsStrExt;
    let refs: Vec<(&[u8], &[u8])> = files
        .iter()
        .map(|(n, data)| (n.as_bytes(), data.as_bytes()))
        .collect();
    py.detach(|| package::write_package(&ns_dir, &name, &refs, durable))
        .map(PathBuf::into_os_string)
        .map_err(to_pyerr)
}

/// Put the complete directory (or file) ``tmp`` at ``final``: rename, or swap with what is there and
/// remove that; never half-visible under ``final``.
#[pyfunction]
fn install_tree(py: Python<'_>, tmp: PathBuf, r#final: PathBuf) -> PyResult<()> {
    py.detach(|| package::install(&tmp, &r#final))
        .map_err(to_pyerr)
}

/// ``syncfs(2)`` on the filesystem holding ``path``.
#[pyfunction]
fn syncfs(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| fsops::syncfs(&path)).map_err(to_pyerr)
}

/// fsync a directory so that renames and unlinks in it are durable.
#[pyfunction]
fn fsync_dir(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| fsops::fsync_dir(&path)).map_err(to_pyerr)
}

/// What ``spawn_wait`` returns: wait status (``None``: reaped elsewhere), timed out, stdout and stderr tails.
type SpawnOutcome<'py> = (Option<i32>, bool, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Run porch: ``posix_spawn`` ``path`` with ``argv`` and ``env`` (``"KEY=value"`` strings) in a new session,
/// stdin from ``/dev/null``, stdout and stderr to pipes, an empty signal mask and the signals ``sigdef`` at
/// their default; wait for it (SIGTERM to its group after ``timeout`` seconds when positive, SIGKILL
/// ``kill_grace`` later), keeping the last ``tail`` bytes of each stream and reading up to ``pipe_grace``
/// seconds after it exited while a descendant holds the pipes; then SIGKILL what is left of its group
/// and reap it. Returns ``(wait status or None, timed_out, stdout_tail, stderr_tail)``. The GIL is
/// released while waiting; Python's signal handlers run between steps (an exception they raise kills
/// porch's group, reaps it and propagates). ``OSError`` (with ``path``) when it cannot be started,
/// ``ValueError`` for a NUL byte in an argument. ``pidfd=False`` polls ``waitid(WNOWAIT)`` instead.
#[pyfunction]
#[pyo3(signature = (path, argv, env, sigdef, timeout, kill_grace, pipe_grace, tail, pidfd=true))]
#[allow(clippy::too_many_arguments)]
fn spawn_wait<'py>(
    py: Python<'py>,
    path: PathBuf,
    argv: Vec<OsString>,
    env: Vec<OsString>,
    sigdef: Vec<i32>,
    timeout: f64,
    kill_grace: f64,
    pipe_grace: f64,
    tail: usize,
    pidfd: bool,
) -> PyResult<SpawnOutcome<'py>> {
    use std::os::unix::ffi::OsStrExt;
    use std::time::Duration;
    let cstr = |s: &std::ffi::OsStr| {
        std::ffi::CString::new(s.as_bytes())
            .map_err(|_| PyValueError::new_err("embedded null byte"))
    };
    let c_path = cstr(path.as_os_str())?;
    let c_argv = argv.iter().map(|a| cstr(a)).collect::<PyResult<Vec<_>>>()?;
    let c_env = env.iter().map(|e| cstr(e)).collect::<PyResult<Vec<_>>>()?;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let limits = spawn::Limits {
        timeout: (timeout > 0.0).then(|| secs(timeout)),
        kill_grace: secs(kill_grace),
        pipe_grace: secs(pipe_grace),
        tail,
        pidfd,
    };
    let mut run = py
        .detach(|| spawn::Run::start(&c_path, &c_argv, &c_env, &sigdef, limits))
        .map_err(|errno| to_pyerr(CoreError::os(errno, "spawn", &path)))?;
    while !py.detach(|| run.step(spawn::STEP)) {
        if let Err(e) = py.check_signals() {
            py.detach(|| run.reap());
            return Err(e);
        }
    }
    let (status, timed_out, out, err) = py.detach(|| run.reap());
    Ok((
        status,
        timed_out,
        PyBytes::new(py, &out),
        PyBytes::new(py, &err),
    ))
}

/// ``(mtime, writing, priority)`` of one path, as Python sees it.
type FactsTuple = (Option<f64>, Option<bool>, Option<u8>);

/// For each path (a sweep's candidates): ``(mtime, writing, priority)``, one open per file, with the
/// GIL released, on up to ``threads`` threads (0: one per CPU). ``mtime`` is None when the file is
/// gone; ``writing`` None when no read lease can be taken; ``priority`` None when the file has no
/// ``"priority": N`` (N in 0..10) in its first 64 KiB (see ``rust/survey.rs``).
#[pyfunction]
#[pyo3(name = "survey", signature = (paths, threads=0))]
fn survey_paths(
    py: Python<'_>,
    paths: &Bound<'_, PyAny>,
    threads: usize,
) -> PyResult<Vec<FactsTuple>> {
    let paths = path_list(paths)?;
    let facts = py.detach(|| survey::survey_files(&paths, threads));
    Ok(facts
        .into_iter()
        .map(|f| (f.mtime, f.writing, f.priority))
        .collect())
}

/// The first ``limit`` bytes of each regular file in ``paths`` (None: gone, not a regular file, never
/// followed or blocked on, or unreadable), with the GIL released, on up to ``threads`` threads.
#[pyfunction]
#[pyo3(signature = (paths, limit, threads=0))]
fn read_files<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    limit: usize,
    threads: usize,
) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
    let paths = path_list(paths)?;
    let data = py.detach(|| survey::read_small_files(&paths, limit, threads));
    Ok(data
        .into_iter()
        .map(|d| d.map(|d| PyBytes::new(py, &d)))
        .collect())
}

/// ``name + suffix``, shortened with ``~`` and a hash of ``name`` when longer than ``limit`` bytes.
#[pyfunction]
#[pyo3(signature = (name, suffix=OsString::new(), limit=names::NAME_MAX as i64))]
fn fit_name(name: OsString, suffix: OsString, limit: i64) -> PyResult<OsString> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let fitted = usize::try_from(limit)
        .ok()
        .and_then(|l| names::fit_name(name.as_bytes(), suffix.as_bytes(), l));
    match fitted {
        Some(v) => Ok(OsString::from_vec(v)),
        None => Err(PyValueError::new_err(format!(
            "suffix {suffix:?} leaves no room for a name within {limit} bytes"
        ))),
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("NotRegularFile", py.get_type::<NotRegularFile>())?;
    m.add("FileTooLarge", py.get_type::<FileTooLarge>())?;
    m.add("LinkInPath", py.get_type::<LinkInPath>())?;
    m.add_function(wrap_pyfunction!(sha256_file, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_read, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_files, m)?)?;
    m.add_function(wrap_pyfunction!(move_noclobber, m)?)?;
    m.add_function(wrap_pyfunction!(write_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(remove_dead_temps, m)?)?;
    m.add_function(wrap_pyfunction!(rename_exchange, m)?)?;
    m.add_function(wrap_pyfunction!(syncfs, m)?)?;
    m.add_function(wrap_pyfunction!(fsync_dir, m)?)?;
    m.add_function(wrap_pyfunction!(write_package, m)?)?;
    m.add_function(wrap_pyfunction!(install_tree, m)?)?;
    m.add_function(wrap_pyfunction!(survey_paths, m)?)?;
    m.add_function(wrap_pyfunction!(read_files, m)?)?;
    m.add_function(wrap_pyfunction!(fit_name, m)?)?;
    m.add_function(wrap_pyfunction!(spawn_wait, m)?)?;
    pywatch::register(m)?;
    pyanchor::register(m)?;
    pyatomic::register(m)?;
    m.add("MOVE_TEMP_MARKER", fsops::MOVE_TEMP_MARKER)?;
    m.add("ATOMIC_TEMP_MARKER", fsops::ATOMIC_TEMP_MARKER)?;
    m.add("TEMP_SUFFIX", fsops::TEMP_SUFFIX)?;
    m.add("NAME_MAX", names::NAME_MAX)?;
    Ok(())
}
