//! The Python face of [`crate::beneath::Anchor`]: ``conductor_loop._core.Anchor``.

use std::ffi::OsString;
use std::path::PathBuf;

use pyo3::prelude::*;

use crate::beneath::Anchor;
use crate::to_pyerr;

/// A directory held open: writes and moves below it never follow a symbolic link.
#[pyclass(module = "conductor_loop._core", name = "Anchor", frozen)]
struct PyAnchor {
    inner: Anchor,
}

#[pymethods]
impl PyAnchor {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Anchor::open(&path)).map_err(to_pyerr)?;
        Ok(PyAnchor { inner })
    }

    /// The path the anchor was opened by.
    #[getter]
    fn path(&self) -> OsString {
        self.inner.path().as_os_str().to_owned()
    }

    /// Open the path again (the directory was deleted and made again).
    fn reopen(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.reopen()).map_err(to_pyerr)
    }

    /// ``write_atomic`` of ``path`` below the anchor, resolved without following symlinks.
    #[pyo3(signature = (path, data, fsync=true, mode=0o666))]
    fn write_atomic(
        &self,
        py: Python<'_>,
        path: PathBuf,
        data: &[u8],
        fsync: bool,
        mode: u32,
    ) -> PyResult<()> {
        py.detach(|| self.inner.write_atomic(&path, data, fsync, mode))
            .map_err(to_pyerr)
    }

    /// ``move_noclobber`` of ``src`` into ``dst_dir``, both below the anchor.
    #[pyo3(signature = (src, dst_dir, name=None))]
    fn move_noclobber(
        &self,
        py: Python<'_>,
        src: PathBuf,
        dst_dir: PathBuf,
        name: Option<PathBuf>,
    ) -> PyResult<OsString> {
        py.detach(|| {
            self.inner
                .move_noclobber(&src, &dst_dir, name.as_deref().map(|n| n.as_os_str()))
        })
        .map_err(to_pyerr)
    }

    /// Remove the file ``path`` (below the anchor) relative to its directory (``unlinkat``).
    fn unlink(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.unlink(&path)).map_err(to_pyerr)
    }

    /// fsync the directory ``path`` (below the anchor, or the anchor itself).
    fn fsync_dir(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.fsync_dir(&path)).map_err(to_pyerr)
    }

    fn __repr__(&self) -> String {
        format!("Anchor({:?})", self.inner.path())
    }
}

/// Add ``Anchor`` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAnchor>()
}
