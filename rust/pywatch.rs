//! The Python face of the watchers: `Batch`, the shared `BaseWatcher` methods, `Watcher`
//! (inotify), `PollWatcher` (listing), and the filesystem-type helpers that choose between them.
//! Every method that takes the watcher's lock releases the GIL first (the watcher thread may hold
//! the lock while it applies a large listing).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyDeprecationWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::watch::{Batch, Handle};
use crate::{fstype, poll, to_pyerr, watcher};

/// One result of ``take_batch`` / ``next_batch``.
#[pyclass(module = "conductor_loop._core", name = "Batch", frozen)]
struct PyBatch {
    paths: Vec<OsString>,
    rescan: bool,
    events: u64,
}

impl PyBatch {
    fn from_core(b: Batch) -> Self {
        PyBatch {
            paths: b.paths.into_iter().map(PathBuf::into_os_string).collect(),
            rescan: b.rescan,
            events: b.events,
        }
    }
}

#[pymethods]
impl PyBatch {
    /// Settled paths, oldest first (absolute, as strings).
    #[getter]
    fn paths(&self) -> Vec<OsString> {
        self.paths.clone()
    }

    /// True when events may have been lost (overflow, lost watch, directory replaced).
    #[getter]
    fn rescan(&self) -> bool {
        self.rescan
    }

    /// Raw inotify events (or changes a poll saw) since the previous batch.
    #[getter]
    fn events(&self) -> u64 {
        self.events
    }

    fn __repr__(&self) -> String {
        format!(
            "Batch(paths={:?}, rescan={}, events={})",
            self.paths,
            if self.rescan { "True" } else { "False" },
            self.events
        )
    }

    fn __len__(&self) -> usize {
        self.paths.len()
    }
}

/// Longest time `next_batch` stays without the GIL before checking for signals.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// What `Watcher` and `PollWatcher` share: everything but how they are made.
#[pyclass(
    module = "conductor_loop._core",
    name = "BaseWatcher",
    subclass,
    frozen
)]
struct PyBaseWatcher {
    inner: Handle,
}

#[pymethods]
impl PyBaseWatcher {
    /// A descriptor (eventfd) readable while a batch is ready; for ``select`` / ``wait``.
    fn fileno(&self) -> i32 {
        self.inner.ready_fd()
    }

    /// The batch ready now (possibly empty), without waiting; rearms :meth:`fileno`.
    fn take_batch(&self, py: Python<'_>) -> PyResult<PyBatch> {
        match py.detach(|| (!self.inner.is_closed()).then(|| self.inner.take_batch())) {
            Some(b) => Ok(PyBatch::from_core(b)),
            None => Err(PyValueError::new_err("take_batch on a closed watcher")),
        }
    }

    /// Wait up to ``timeout_ms`` for settled paths or a rescan; checks for signals every 100 ms.
    /// Raises ``ValueError`` when the watcher is closed (a call blocked while ``close()`` runs in
    /// another thread returns an empty batch).
    fn next_batch(&self, py: Python<'_>, timeout_ms: u64) -> PyResult<PyBatch> {
        if py.detach(|| self.inner.is_closed()) {
            return Err(PyValueError::new_err("next_batch on a closed watcher"));
        }
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_SLICE);
            match py.detach(|| self.inner.wait_batch(slice)) {
                Ok(Some(b)) => return Ok(PyBatch::from_core(b)),
                Ok(None) => {}
                Err(_) => return Ok(PyBatch::from_core(Batch::default())),
            }
            py.check_signals()?;
            if Instant::now() >= deadline {
                return Ok(PyBatch::from_core(self.inner.take_batch()));
            }
        }
    }

    /// Paths seen changed that have not settled yet (and settled ones not yet taken).
    fn pending(&self, py: Python<'_>) -> Vec<OsString> {
        py.detach(|| self.inner.pending())
            .into_iter()
            .map(PathBuf::into_os_string)
            .collect()
    }

    /// Change the quiet period (for SIGHUP reloads).
    fn set_debounce(&self, py: Python<'_>, debounce_ms: u64) {
        py.detach(|| self.inner.set_debounce(Duration::from_millis(debounce_ms)));
    }

    /// False while the directory is not watched (lost, missing), or after close().
    fn is_alive(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.is_alive())
    }

    /// The last I/O error the watcher thread recorded, or None.
    fn last_error(&self, py: Python<'_>) -> Option<String> {
        py.detach(|| self.inner.last_error())
    }

    /// Stop watching; idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) {
        self.close(py);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let inner = &slf.get().inner;
        Ok(format!(
            "{}({:?}, alive={})",
            slf.get_type().qualname()?,
            inner.dir(),
            if inner.is_alive() { "True" } else { "False" }
        ))
    }
}

/// The debounce of ``Watcher(dir, debounce_ms)`` or of the deprecated
/// ``Watcher(dir, patterns, debounce_ms)`` (whose patterns are ignored, with a
/// ``DeprecationWarning``).
fn debounce_arg(args: &Bound<'_, PyTuple>, kw: Option<u64>) -> PyResult<u64> {
    match (args.len(), kw) {
        (0, Some(ms)) => Ok(ms),
        (1, None) => args.get_item(0)?.extract(),
        (2, None) => {
            let py = args.py();
            PyErr::warn(
                py,
                &py.get_type::<PyDeprecationWarning>(),
                c"Watcher(dir, patterns, debounce_ms) is deprecated: patterns are ignored, \
                  every name is emitted; use Watcher(dir, debounce_ms) and filter names",
                2,
            )?;
            args.get_item(1)?.extract()
        }
        _ => Err(PyTypeError::new_err(
            "Watcher(dir, debounce_ms) takes a directory and a debounce in milliseconds",
        )),
    }
}

/// Inotify watcher of one directory that emits a path once it settled (quiet for
/// ``debounce_ms`` after a close-write or a rename into the directory).
#[pyclass(module = "conductor_loop._core", name = "Watcher", extends = PyBaseWatcher, frozen)]
struct PyWatcher;

#[pymethods]
impl PyWatcher {
    #[new]
    #[pyo3(signature = (dir, *args, debounce_ms=None))]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        args: &Bound<'_, PyTuple>,
        debounce_ms: Option<u64>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let debounce = Duration::from_millis(debounce_arg(args, debounce_ms)?);
        let inner = py
            .detach(|| watcher::start(&dir, debounce))
            .map_err(to_pyerr)?;
        Ok(PyClassInitializer::from(PyBaseWatcher { inner }).add_subclass(PyWatcher))
    }
}

/// Watcher that lists the directory every ``interval_ms`` (for network filesystems).
#[pyclass(module = "conductor_loop._core", name = "PollWatcher", extends = PyBaseWatcher, frozen)]
struct PyPollWatcher;

#[pymethods]
impl PyPollWatcher {
    #[new]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        debounce_ms: u64,
        interval_ms: u64,
    ) -> PyResult<PyClassInitializer<Self>> {
        if interval_ms == 0 {
            return Err(PyValueError::new_err("interval_ms must be at least 1"));
        }
        let (debounce, interval) = (
            Duration::from_millis(debounce_ms),
            Duration::from_millis(interval_ms),
        );
        let inner = py
            .detach(|| poll::start(&dir, debounce, interval))
            .map_err(to_pyerr)?;
        Ok(PyClassInitializer::from(PyBaseWatcher { inner }).add_subclass(PyPollWatcher))
    }
}

/// The filesystem type name of ``path`` (``statfs(2)`` ``f_type``), ``"0x<hex>"`` when unknown.
#[pyfunction]
fn fs_type(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| fstype::fs_type(Path::new(&path)))
        .map_err(to_pyerr)
}

/// Whether ``path`` is on a filesystem where inotify misses other hosts' writes.
#[pyfunction]
fn is_network_fs(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
    py.detach(|| fstype::is_network_fs(Path::new(&path)))
        .map_err(to_pyerr)
}

/// Add the watcher classes and filesystem helpers to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBatch>()?;
    m.add_class::<PyBaseWatcher>()?;
    m.add_class::<PyWatcher>()?;
    m.add_class::<PyPollWatcher>()?;
    m.add_function(wrap_pyfunction!(fs_type, m)?)?;
    m.add_function(wrap_pyfunction!(is_network_fs, m)?)?;
    Ok(())
}
