//! The Python face of [`crate::atomic::TempFile`]: ``conductor_loop._core.AtomicFile``.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::atomic::TempFile;
use crate::to_pyerr;

/// A file written in pieces and put in place atomically (``write_atomic``'s rule): nothing shows
/// under ``path`` until :meth:`commit`; closed or dropped before that, the temp file is removed.
#[pyclass(module = "conductor_loop._core", name = "AtomicFile")]
struct PyAtomicFile {
    inner: Option<TempFile<OwnedFd>>,
}

/// What `write` and `commit` say once the file is committed or closed.
const GONE: &str = "the atomic file is committed or closed";

impl PyAtomicFile {
    fn open(&mut self) -> PyResult<&mut TempFile<OwnedFd>> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err(GONE))
    }
}

#[pymethods]
impl PyAtomicFile {
    #[new]
    #[pyo3(signature = (path, mode=0o666))]
    fn new(py: Python<'_>, path: PathBuf, mode: u32) -> PyResult<Self> {
        let inner = py
            .detach(|| TempFile::create(&path, mode))
            .map_err(to_pyerr)?;
        Ok(PyAtomicFile { inner: Some(inner) })
    }

    /// Append ``data`` (GIL released while it is written).
    fn write(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let file = self.open()?;
        py.detach(|| file.write(data)).map_err(to_pyerr)
    }

    /// fsync (if ``fsync``), rename over the final name, fsync the directory (if ``fsync``).
    #[pyo3(signature = (fsync=true))]
    fn commit(&mut self, py: Python<'_>, fsync: bool) -> PyResult<()> {
        let file = self
            .inner
            .take()
            .ok_or_else(|| PyValueError::new_err(GONE))?;
        py.detach(|| file.commit(fsync)).map_err(to_pyerr)
    }

    /// Give up: remove the temp file (nothing if committed already).
    fn close(&mut self, py: Python<'_>) {
        if let Some(file) = self.inner.take() {
            py.detach(|| drop(file));
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }
}

/// Add ``AtomicFile`` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAtomicFile>()
}
