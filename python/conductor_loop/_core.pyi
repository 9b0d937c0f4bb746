"""Type stubs for the Rust extension ``conductor_loop._core``.

Every function that blocks or does I/O releases the GIL while it works.
Errors are ``OSError`` subclasses carrying ``errno`` and ``filename`` (and ``filename2`` for
two-path operations); a bad argument (e.g. a ``name`` containing ``/``) raises ``ValueError``.
Paths may be given as ``str`` or ``os.PathLike``; paths are returned as ``str``.
"""

from collections.abc import Mapping, Sequence
from types import TracebackType

__version__: str

NAME_MAX: int
"""Longest file name (bytes) the core creates; longer names are shortened with a hash."""

MOVE_TEMP_MARKER: str
"""Marker in the hidden temp name of a cross-filesystem move: ``.<name>.cl-move-<pid>-<rand>.tmp``.

A leftover (after a crash) is a complete, fsynced copy only if the source is gone; recovery code
finds leftovers by a leading ``.``, this marker and :data:`TEMP_SUFFIX`. When ``<name>`` would make
the temp name longer than ``NAME_MAX`` it is cut and followed by ``~<12 hex digits>``.
"""

ATOMIC_TEMP_MARKER: str
"""Marker in the hidden temp name of :func:`write_atomic`: ``.<name>.cl-tmp-<pid>-<rand>.tmp``."""

TEMP_SUFFIX: str
"""Suffix of every temp file the core creates (``.tmp``)."""

class NotRegularFile(OSError):
    """The path is a symlink, FIFO, socket, device or directory (never opened in a blocking way).

    ``errno`` is ELOOP for a symlink, EISDIR for a directory, ENXIO for a socket, EINVAL otherwise.
    """

class FileTooLarge(OSError):
    """The file is larger than the ``max_size`` the caller allowed (``errno`` is EFBIG)."""

def sha256_file(path: str, max_size: int | None = None) -> tuple[str, int]:
    """Streamed SHA-256 of a regular file: ``(hex digest, size in bytes)``.

    Opens with ``O_NOFOLLOW|O_NONBLOCK`` and checks ``fstat``; raises ``NotRegularFile`` for
    anything but a regular file, ``FileTooLarge`` when the file is (or grows while read) larger
    than ``max_size``.
    """

def sha256_read(path: str, max_size: int | None = None) -> tuple[str, bytes]:
    """Read a regular file whole and hash exactly the bytes returned: ``(hex digest, content)``."""

def sha256_files(paths: Sequence[str], threads: int = 0) -> list[tuple[str, int] | OSError]:
    """``sha256_file`` for many paths in parallel; per path a result or the exception object, in order.

    ``threads=0`` uses one thread per CPU.
    """

def move_noclobber(src: str, dst_dir: str, name: str | None = None) -> str:
    """Move ``src`` into ``dst_dir`` (as ``name``, default its basename) without ever overwriting.

    On a clash the name gets a unique ``.YYYYmmddTHHMMSS.mmmZ`` suffix (UTC) before the extension
    (``intent-a.json`` → ``intent-a.20260115T101502.123Z.json``), then a counter
    (``intent-a.20260115T101502.123Z.2.json``). A name longer than ``NAME_MAX`` is shortened with
    ``~<hash of the full name>``. ``src`` must be a regular file (``NotRegularFile`` otherwise;
    symlinks are never followed). On one filesystem the move is one ``renameat2(RENAME_NOREPLACE)``
    and is not fsynced (call :func:`fsync_dir`). Across filesystems: copy to a hidden temp name
    (see :data:`MOVE_TEMP_MARKER`), keep mode and mtime, fsync, rename no-clobber, fsync the
    directory, unlink the source, fsync its directory; the temp file is removed on failure.
    Returns the final path.
    """

def write_atomic(path: str, data: bytes, fsync: bool = True, mode: int = 0o666) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, rename over ``path``, fsync the directory.

    The file is created with ``mode`` less the umask.

    With ``fsync=False`` the data and directory fsyncs are skipped (the caller makes the batch durable
    with ``syncfs``); the rename is still atomic. The temp file is removed on error.
    """

def rename_exchange(a: str, b: str) -> None:
    """Atomically swap two existing paths (``renameat2(RENAME_EXCHANGE)``), e.g. two directories."""

def syncfs(path: str) -> None:
    """``syncfs(2)`` on the filesystem holding ``path``: one flush for a whole batch of writes."""

def fsync_dir(path: str) -> None:
    """fsync a directory so that renames and unlinks in it are durable."""

def spawn_porch(program: str, argv: Sequence[str], env: Mapping[str, str], stdout: int, stderr: int) -> int:
    """Start ``program`` with ``argv`` (``argv[0]`` included) and exactly ``env``; returns its pid.

    The child gets its own session (``setsid``), stdin from ``/dev/null``, stdout and stderr dup'ed from
    the given descriptors and no other descriptor (everything above 2 is close-on-exec), every signal at
    its default disposition with none blocked, and ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies with the
    thread that started it. The caller waits for it. Raises ``OSError`` (with the program as filename)
    when it cannot be started, ``ValueError`` for an empty argv or a NUL byte.
    """

class Batch:
    """One result of :meth:`Watcher.next_batch`."""

    @property
    def paths(self) -> list[str]:
        """Settled paths, oldest first (absolute, as strings)."""
    @property
    def rescan(self) -> bool:
        """True when events may have been lost (overflow, lost watch, directory replaced)."""
    @property
    def events(self) -> int:
        """Raw inotify events consumed since the previous batch."""
    def __len__(self) -> int:
        """Number of settled paths."""

class Watcher:
    """Inotify watcher of one directory that emits a path once it settled (quiet for ``debounce_ms``
    after a close-write or a rename into the directory).

    Only base names matching one of the fnmatch-style ``patterns`` (``*``, ``?``, ``[...]``) and not
    starting with ``.`` are tracked. A later write disarms a path until it is closed again; a path
    deleted or renamed away before it is taken is never emitted. Raises ``OSError`` when ``dir``
    cannot be watched (missing, not a directory, inotify limits). Thread-safe.
    """

    def __init__(self, dir: str, patterns: Sequence[str], debounce_ms: int) -> None: ...
    def next_batch(self, timeout_ms: int) -> Batch:
        """Wait up to ``timeout_ms`` for settled paths or a rescan; returns early on signals (≤100 ms).

        A pending Python signal handler runs (and its exception, e.g. ``KeyboardInterrupt``,
        propagates) within 100 ms. Returns an empty batch on timeout. Raises ``ValueError`` on a
        closed watcher; a call blocked while another thread closes the watcher returns an empty batch.
        """
    def pending(self) -> list[str]:
        """Paths seen modified that have not settled yet, plus settled ones not yet taken."""
    def set_debounce(self, debounce_ms: int) -> None:
        """Change the quiet period (for SIGHUP reloads)."""
    def is_alive(self) -> bool:
        """False once the watch is lost and could not be re-added (retried every 100 ms, and
        True again with a rescan once the directory exists again), or after close()."""
    def last_error(self) -> str | None:
        """The last I/O problem the watcher thread recorded (e.g. why a watch could not be re-added)."""
    def close(self) -> None:
        """Stop watching (joins the thread, closes the inotify descriptor); idempotent."""
    def __enter__(self) -> Watcher: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
