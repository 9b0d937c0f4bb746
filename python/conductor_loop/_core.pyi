"""Type stubs for the Rust extension ``conductor_loop._core``.

Every function that blocks or does I/O releases the GIL while it works.
Errors are ``OSError`` subclasses carrying ``errno`` and ``filename`` (and ``filename2`` for
two-path operations); a bad argument (e.g. a ``name`` containing ``/``) raises ``ValueError``.
Paths may be given as ``str`` or ``os.PathLike``; paths are returned as ``str``.
"""

from collections.abc import Sequence
from os import PathLike
from types import TracebackType
from typing import TypeVar, overload

__version__: str

NAME_MAX: int
"""Longest file name (bytes) the core creates; longer names are shortened by :func:`fit_name`."""

MOVE_TEMP_MARKER: str
"""Marker in the hidden temp name of a cross-filesystem move: ``.<name>.cl-move-<pid>-<rand>.tmp``.

A leftover (after a crash) is a complete, fsynced copy only if the source is gone; recovery code
finds leftovers by a leading ``.``, this marker and :data:`TEMP_SUFFIX`. When ``<name>`` would make
the temp name longer than ``NAME_MAX`` it is shortened by :func:`fit_name` (``<prefix>~<16 hex digits>``).
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

class LinkInPath(OSError):
    """A directory below an :class:`Anchor` is a symbolic link (``errno`` ELOOP) or not a directory
    (ENOTDIR): it was never followed, nothing was written. ``filename`` is the directory's full path."""

class Anchor:
    """A directory (the handoff) held open: writes and moves below it never follow a symbolic link.

    The directory itself is opened by ``path`` as configured (symlinks in ``path`` are followed). Every
    directory below it is resolved from that descriptor: one ``openat(O_NOFOLLOW | O_DIRECTORY)`` for a
    directory one level down (``status/``, ``processed/``, ``failed/``), one ``openat2(RESOLVE_BENEATH |
    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`` for a deeper one (where the kernel has no ``openat2``,
    ENOSYS or EPERM from a seccomp filter: one ``openat`` per component); files are then
    created, renamed, unlinked and fsynced relative to those descriptors (``openat``, ``renameat2``,
    ``linkat``, ``unlinkat``). A link (or a non-directory) met on the way raises :class:`LinkInPath`.

    ``path`` is kept absolute. Paths given to the methods are absolute or relative to the current
    directory (as everywhere in the core) and must lie below ``path``; ``..`` and paths elsewhere raise
    ``ValueError``. Returned paths are ``path`` joined with what lies below. When the directory was
    deleted (and made again under ``path``), an operation that fails with ENOENT on the dead descriptor
    opens ``path`` again and is tried once more. Thread-safe; not picklable (one per process). Each call
    makes the same system calls as the path-based function, one directory resolution each.
    """

    def __init__(self, path: str | PathLike[str]) -> None: ...
    @property
    def path(self) -> str:
        """The path the anchor was opened by."""
    def reopen(self) -> None:
        """Open ``path`` again (the directory was deleted and made again)."""
    def write_atomic(self, path: str, data: bytes, fsync: bool = True, mode: int = 0o666) -> None:
        """:func:`write_atomic` of ``path``, its directory resolved below the anchor without following links."""
    def move_noclobber(self, src: str, dst_dir: str, name: str | None = None) -> str:
        """:func:`move_noclobber` of ``src`` into ``dst_dir``, both directories resolved below the anchor."""
    def fsync_dir(self, path: str) -> None:
        """:func:`fsync_dir` of ``path`` (the anchor itself or a directory below it)."""
    def unlink(self, path: str) -> None:
        """Remove the file ``path`` (``unlinkat`` in its directory resolved below the anchor)."""

def fit_name(name: str, suffix: str = "", limit: int = ...) -> str:
    """Return ``name + suffix``, shortened when it would be longer than ``limit`` bytes (default ``NAME_MAX``).

    The one rule for long names (status files, error logs, conflict names and temp names all use it).
    A shortened name keeps a readable prefix of ``name`` (cut on a UTF-8 character boundary; bytes
    that are not UTF-8, i.e. surrogate escapes, are dropped from the prefix), then ``~`` and the first
    16 hex digits of the SHA-256 of ``name`` (UTF-8, surrogate escapes as their bytes), then
    ``suffix``: two different long names never map to the same result. Lengths count the UTF-8
    (``surrogateescape``) bytes. Raises ``ValueError`` when ``suffix`` and the tag leave no room
    for any of ``name``.
    """

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
    (``intent-a.20260115T101502.123Z.2.json``). A name longer than ``NAME_MAX`` is shortened by
    :func:`fit_name` applied to the stem, with the timestamp, counter and extension as its suffix.
    ``src`` must be a regular file (``NotRegularFile`` otherwise; symlinks are never followed). On one
    filesystem the move is one ``renameat2(RENAME_NOREPLACE)`` and is not fsynced (call
    :func:`fsync_dir`). Across filesystems: copy to a hidden temp name
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

class AtomicFile:
    """A file written in pieces and put in place atomically, the rule of :func:`write_atomic`: a hidden
    temp file beside ``path`` (created with ``mode`` less the umask), then :meth:`commit`. Nothing shows
    under ``path`` before the commit; closed (or dropped, or left by ``with`` on an error) before it, the
    temp file is removed and ``path`` keeps what it had. The GIL is released while each piece is written.
    """

    def __init__(self, path: str | PathLike[str], mode: int = 0o666) -> None: ...
    def write(self, data: bytes) -> None:
        """Append ``data`` (``ValueError`` once committed or closed)."""
    def commit(self, fsync: bool = True) -> None:
        """fsync the file (if ``fsync``), rename it over ``path``, fsync the directory (if ``fsync``)."""
    def close(self) -> None:
        """Give up: remove the temp file (nothing once committed)."""
    def __enter__(self) -> AtomicFile: ...
    def __exit__(self, *exc: object) -> bool: ...

def remove_dead_temps(path: str | PathLike[str]) -> int:
    """Remove the temp files that writers of ``path`` (:func:`write_atomic`, :class:`AtomicFile`) left beside
    it and that no process will finish: those whose process id (in the temp name) is gone. A writer killed
    before its commit leaves one; a live writer's is kept. Returns how many were removed (``OSError`` if the
    directory cannot be listed)."""

def rename_exchange(a: str, b: str) -> None:
    """Atomically swap two existing paths (``renameat2(RENAME_EXCHANGE)``), e.g. two directories."""

def syncfs(path: str) -> None:
    """``syncfs(2)`` on the filesystem holding ``path``: one flush for a whole batch of writes."""

def fsync_dir(path: str) -> None:
    """fsync a directory so that renames and unlinks in it are durable."""

def write_package(
    ns_dir: str | PathLike[str], name: str, files: Sequence[tuple[str, bytes]], durable: bool
) -> str:
    """Write the directory ``ns_dir/name`` holding ``files`` (file name, content) and return its path.

    The built-in porch's package, in one call with the GIL released: ``ns_dir`` (and any missing parent)
    is made when missing; a hidden temp directory ``.<name>.tmp-<12 hex digits>`` beside the final one
    gets each file (``O_CREAT | O_EXCL``, mode 0644 less the umask) and is then put at the final name as
    :func:`install_tree` does. ``durable`` fsyncs each file, the temp directory, ``ns_dir`` and the parent
    of every directory made; otherwise nothing is fsynced (the loop makes a batch durable with one
    :func:`syncfs`). On any error the temp directory is removed and ``OSError`` is raised with ``errno``,
    the C library's text as ``strerror`` (as Python's ``os`` functions give it) and the path as
    ``filename``; whatever was at the final name stays there, never half-written or mixed.
    ``ValueError`` when ``name`` or a file name is empty, ``.``, ``..`` or holds a ``/``.
    """

def install_tree(tmp: str | PathLike[str], final: str | PathLike[str]) -> None:
    """Put the complete directory (or file) ``tmp`` at ``final``, never half-visible there.

    A plain ``rename``; when something is at ``final``, ``renameat2(RENAME_EXCHANGE)`` and the removal of
    the old tree (now at ``tmp``), starting over when it vanished in between. On a filesystem without
    ``RENAME_EXCHANGE`` the old one is renamed to ``tmp + ".old"`` first (``final`` is then briefly
    absent, but never mixed) and removed. ``OSError`` (EBUSY) when ``final`` kept changing 100 times.
    """

def spawn_wait(
    path: str,
    argv: list[str],
    env: list[str],
    sigdef: list[int],
    timeout: float,
    kill_grace: float,
    pipe_grace: float,
    tail: int,
    pidfd: bool = True,
) -> tuple[int | None, bool, bytes, bytes]:
    """Run porch: ``posix_spawn`` in a new session (stdin ``/dev/null``, stdout and stderr to pipes, an
    empty signal mask, ``sigdef`` at their default, ``env`` as ``"KEY=value"``), wait with a ``pidfd``,
    SIGTERM its group after ``timeout`` seconds (when positive) and SIGKILL ``kill_grace`` later, read up to
    ``pipe_grace`` seconds after its exit while a descendant holds the pipes, then SIGKILL what is left of
    its group and reap it: ``(wait status or None, timed_out, stdout tail, stderr tail)`` (the last ``tail``
    bytes of each). The GIL is released while it waits; an exception raised by a Python signal handler
    meanwhile kills the group, reaps porch and propagates. ``OSError`` (with ``path``) when it cannot be
    started, ``ValueError`` for a NUL byte. ``pidfd=False`` polls ``waitid(WNOWAIT)`` every 10 ms instead
    (kernels without ``pidfd_open``)."""

def survey(paths: Sequence[str], threads: int = 0) -> list[tuple[float | None, bool | None, int | None]]:
    """For each path, in order: ``(mtime, writing, priority)`` with one open per file (``O_NOFOLLOW |
    O_NONBLOCK``), the GIL released, on up to ``threads`` threads (0: one per CPU).

    ``mtime`` (seconds) is None when the file or its directory is gone. ``writing`` is True while some
    process (this one included) has the file open for writing: an exact probe with a Linux read lease
    (``fcntl(F_SETLEASE, F_RDLCK)``, released at once; a broken lease would signal ``SIGURG``, ignored by
    default), None when leases are unavailable for it (not the file's owner without ``CAP_LEASE``, a
    filesystem without leases). ``priority`` is N of the first ``"priority": N`` in the first 64 KiB when
    N is 0..10, else None. A link, a FIFO, a directory or an unreadable file is reported by its ``lstat``:
    ``(mtime, False, None)``. Never raises for a path."""

def read_files(paths: Sequence[str], limit: int, threads: int = 0) -> list[bytes | None]:
    """The first ``limit`` bytes of each regular file in ``paths``, in order, with the GIL released, on up
    to ``threads`` threads (0: one per CPU); None for a path that is gone, is not a regular file (never
    followed, never blocked on) or cannot be read. Never raises for a path."""

class Batch:
    """One result of :meth:`BaseWatcher.take_batch` / :meth:`BaseWatcher.next_batch`."""

    @property
    def paths(self) -> list[str]:
        """Settled paths, oldest first (absolute, as strings): every name, the caller filters."""
    @property
    def rescan(self) -> bool:
        """True when events may have been lost (overflow, lost watch, directory replaced): list the directory."""
    @property
    def events(self) -> int:
        """Raw inotify events (:class:`Watcher`) or changes seen (:class:`PollWatcher`) since the previous batch."""
    def __len__(self) -> int:
        """Number of settled paths."""

_W = TypeVar("_W", bound="BaseWatcher")

class BaseWatcher:
    """What :class:`Watcher` (inotify) and :class:`PollWatcher` (listing) share: the whole API but the constructor.

    A background thread (no GIL) watches one directory and hands out each name once it *settled*.
    Dumb about names: every entry of the directory but a sub-directory is tracked and emitted,
    hidden and temp names included; which names are intents is the caller's rule. A name deleted
    or renamed away before it is taken is never emitted. Thread-safe.

    One wait: :meth:`fileno` is readable while a batch is ready, so the watcher (it has
    ``fileno``) can sit in ``select`` or ``multiprocessing.connection.wait`` beside pipes and
    sentinels; then :meth:`take_batch` takes the batch without blocking.
    """

    def fileno(self) -> int:
        """A descriptor (an eventfd: ``O_CLOEXEC``, non-blocking) readable while a batch is ready.

        Ready means settled paths, a rescan, or a change of :meth:`is_alive` since the last batch
        taken (after :meth:`close` too). It stays readable until :meth:`take_batch` (or
        :meth:`next_batch`) takes the batch. Never read or close it; it stays valid until the
        watcher is garbage-collected, also after :meth:`close`.
        """
    def take_batch(self) -> Batch:
        """The batch ready now (possibly empty), without blocking; rearms :meth:`fileno`.

        Raises ``ValueError`` on a closed watcher.
        """
    def next_batch(self, timeout_ms: int) -> Batch:
        """Wait up to ``timeout_ms`` for settled paths or a rescan; returns early on signals (≤100 ms).

        A pending Python signal handler runs (and its exception, e.g. ``KeyboardInterrupt``,
        propagates) within 100 ms. Returns an empty batch on timeout. Raises ``ValueError`` on a
        closed watcher; a call blocked while another thread closes the watcher returns an empty batch.
        Takes from the same state as :meth:`take_batch` (and rearms :meth:`fileno`).
        """
    def pending(self) -> list[str]:
        """Paths seen changed that have not settled yet (being written, or waiting for the quiet
        period), plus settled ones not yet taken."""
    def set_debounce(self, debounce_ms: int) -> None:
        """Change the quiet period (for SIGHUP reloads); applies to names already waiting too."""
    def is_alive(self) -> bool:
        """False while the directory is not watched: the watch is lost or the directory is missing or
        unreadable (retried, and True again with a rescan once it is back), or after close()."""
    def last_error(self) -> str | None:
        """The last I/O problem the watcher thread recorded (e.g. why the directory cannot be watched)."""
    def close(self) -> None:
        """Stop watching (joins the thread); idempotent."""
    def __enter__(self: _W) -> _W: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

class Watcher(BaseWatcher):
    """Inotify watcher: a name settles ``debounce_ms`` after a close-write or a rename into the directory.

    A later write disarms a name until it is closed again, so a file held open and written is never
    emitted before it is closed. An inotify queue overflow forgets names written but not closed and
    asks for a rescan; so does a lost or replaced directory (the watch is re-added every 100 ms
    once the directory exists again). Raises ``OSError`` when ``dir`` cannot be watched (missing,
    not a directory, inotify limits). Sees only writes made through this host's kernel: on a
    network filesystem (:func:`is_network_fs`) use :class:`PollWatcher`.
    """

    @overload
    def __init__(self, dir: str | PathLike[str], debounce_ms: int) -> None: ...
    @overload
    def __init__(self, dir: str | PathLike[str], *, debounce_ms: int) -> None: ...
    @overload
    def __init__(self, dir: str | PathLike[str], patterns: Sequence[str], debounce_ms: int) -> None:
        """Deprecated form (``DeprecationWarning``): ``patterns`` are ignored, every name is emitted."""

class PollWatcher(BaseWatcher):
    """Watcher that lists ``dir`` every ``interval_ms``: for network filesystems, where inotify misses
    other hosts' writes.

    Each listing reads the directory (getdents) and ``lstat``s every entry (links are not followed).
    A name settles once its (inode, size, mtime in ns) has not changed for ``debounce_ms``, as seen
    by a later listing: a file still growing between listings is never emitted. A vanished name is
    dropped. The first listing is the baseline and emits nothing (list the directory yourself, as
    after a rescan); so is the first listing after the directory came back or was replaced, which
    sets ``rescan``. A missing or unreadable directory makes :meth:`is_alive` False (with
    :meth:`last_error`) until a listing works again. :attr:`Batch.events` counts the changes seen.
    Raises ``OSError`` (with the path) when the first listing fails, ``ValueError`` when
    ``interval_ms`` is 0.
    """

    def __init__(self, dir: str | PathLike[str], debounce_ms: int, interval_ms: int) -> None: ...

def fs_type(path: str | PathLike[str]) -> str:
    """The filesystem type name of ``path`` from ``statfs(2)`` ``f_type`` (symlinks followed).

    For example ``"ext4"`` (also ext2/ext3), ``"xfs"``, ``"btrfs"``, ``"tmpfs"``, ``"overlay"``,
    ``"zfs"``, ``"nfs"``, ``"cifs"``, ``"smb2"``, ``"fuse"`` (also fuseblk), ``"ceph"``, ``"9p"``;
    ``"0x<hex>"`` for a type it does not know. Raises ``OSError`` with the path on failure.
    """

def is_network_fs(path: str | PathLike[str]) -> bool:
    """True when ``path`` is on a filesystem where inotify does not see other hosts' writes.

    nfs, cifs, smb, smb2, fuse (incl. fuseblk), afs, ceph, 9p, lustre, gpfs, gfs2, ocfs2, beegfs,
    orangefs, coda, ncpfs, vboxsf. Raises ``OSError`` with the path on failure.
    """
