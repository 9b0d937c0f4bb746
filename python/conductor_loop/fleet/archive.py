"""The result archive: a worker packs its private out dir; the ingest checks and unpacks what it received.

Format: a gzip-compressed POSIX (pax) tar holding only directories and regular files, paths relative to the
out dir. Packing refuses links, devices, FIFOs and sockets, and anything over the size cap
(:class:`PackRefused`). Unpacking trusts nothing (:class:`HostileArchive`, with a reason): absolute paths,
``..``, links of any kind, other member types, duplicate names and a total size over the cap are refused,
the gzip stream is inflated only as far as the cap allows (a gzip bomb stops early), and every write goes
through directory descriptors with ``O_NOFOLLOW`` inside a fresh private directory (docs/operations.md,
"Fleet mode").
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import IO

MAX_MEMBERS = 10_000
"""At most this many members in one archive."""
_HEADER_ALLOWANCE = 64 * 1024
"""Inflated bytes allowed beyond the cap, for tar headers and padding."""
_CHUNK = 1 << 16


class PackRefused(ValueError):
    """The out dir holds something a result archive may not carry, or too much; the text says what."""


class HostileArchive(ValueError):
    """A received archive that is refused; the text is the reason (it ends up in the failed intent's log)."""


@dataclass(frozen=True, slots=True)
class Packed:
    """A packed out dir: the archive's bytes, its regular files and their total size."""

    data: bytes
    files: int
    content_bytes: int


class _CappedBuffer(io.RawIOBase):
    """A write-only buffer that refuses to grow past ``cap`` bytes."""

    def __init__(self, cap: int) -> None:
        self.buf = io.BytesIO()
        self.cap = cap

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(b)
        if self.buf.tell() + n > self.cap:
            raise PackRefused(f"the package is larger than the result cap of {self.cap} bytes")
        self.buf.write(b)
        return n


def pack(out_dir: str, max_bytes: int) -> Packed:
    """Pack the directories and regular files under ``out_dir`` (not ``out_dir`` itself).

    Raises :class:`PackRefused` for ``out_dir`` itself not a directory (a symlink), a symlink, a
    hard-linked file, a device, FIFO or socket, more than
    :data:`MAX_MEMBERS` members, or contents or an archive larger than ``max_bytes``.
    """
    if not stat.S_ISDIR(os.lstat(out_dir).st_mode):
        raise PackRefused(f"{out_dir}: is no longer a directory (porch replaced its -out)")
    sink = _CappedBuffer(max_bytes)
    counts = [0, 0]  # files, content bytes
    with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _pack_dir(tar, out_dir, "", counts, max_bytes)
    return Packed(sink.buf.getvalue(), counts[0], counts[1])


def _pack_dir(tar: tarfile.TarFile, root: str, rel: str, counts: list[int], max_bytes: int) -> None:
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            _add(tar, name, tarfile.DIRTYPE, 0o755, st.st_mtime, counts)
            _pack_dir(tar, root, name, counts, max_bytes)
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                raise PackRefused(f"{name}: is a hard link (the package may hold only regular files)")
            counts[1] += st.st_size
            if counts[1] > max_bytes:
                raise PackRefused(f"the package is larger than the result cap of {max_bytes} bytes")
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            with open(os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as f:
                _add(tar, name, tarfile.REGTYPE, mode, st.st_mtime, counts, f, st.st_size)
        else:
            raise PackRefused(f"{name}: is a {_kind(st.st_mode)} (the package may hold only regular files)")


def _add(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes,
    mode: int,
    mtime: float,
    counts: list[int],
    f: io.BufferedReader | None = None,
    size: int = 0,
) -> None:
    if counts[0] >= MAX_MEMBERS:
        raise PackRefused(f"the package has more than {MAX_MEMBERS} entries")
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size = kind, mode, int(mtime), size
    tar.addfile(info, f)
    if kind == tarfile.REGTYPE:
        counts[0] += 1


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


class _BoundedInflate(io.RawIOBase):
    """Reads a gzip stream, refusing to inflate more than ``limit`` bytes (a gzip bomb stops here)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self.limit = limit
        self.seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.gz.read(min(len(b), self.limit + 1 - self.seen))
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise HostileArchive(f"the archive inflates to more than its cap of {self.limit} bytes")
        b[: len(chunk)] = chunk
        return len(chunk)


_KINDS = {
    tarfile.SYMTYPE: "a symlink",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


def unpack_checked(data: bytes, dest_dir: str, max_bytes: int) -> int:
    """Check and unpack a result archive into ``dest_dir`` (created here, mode 0700; it must not exist).

    Returns the number of regular files written. Raises :class:`HostileArchive` with the reason for
    anything refused, after removing ``dest_dir``; nothing is ever written outside it. ``OSError`` from
    the environment (disk full…) propagates, also after removing ``dest_dir``.
    """
    os.mkdir(dest_dir, 0o700)
    try:
        return _unpack(data, dest_dir, max_bytes)
    except BaseException:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise


def _unpack(data: bytes, dest_dir: str, max_bytes: int) -> int:
    stream = io.BufferedReader(_BoundedInflate(data, max_bytes + _HEADER_ALLOWANCE), _CHUNK)
    seen: dict[str, bool] = {}  # path → is a directory
    budget, files = max_bytes, 0
    root = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
            for member in tar:
                parts = _checked_name(member, seen, len(seen))
                if member.type == tarfile.DIRTYPE:
                    _makedirs(root, parts)
                    continue
                if member.size > budget:
                    raise HostileArchive(f"{member.name}: the archive holds more than its cap of {max_bytes} bytes")
                budget -= member.size
                source = tar.extractfile(member)
                assert source is not None  # a regular member always has a file object
                _write_file(root, parts, source, member.mode)
                files += 1
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, UnicodeError) as exc:
            raise HostileArchive(f"not a valid tar.gz archive: {exc}") from None
    finally:
        os.close(root)
    return files


def _checked_name(member: tarfile.TarInfo, seen: dict[str, bool], count: int) -> list[str]:
    name = member.name
    if count >= MAX_MEMBERS:
        raise HostileArchive(f"the archive has more than {MAX_MEMBERS} members")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        kind = _KINDS.get(member.type, f"a member of tar type {member.type!r}")
        raise HostileArchive(f"{name!r}: is {kind} (only regular files and directories are accepted)")
    if name.startswith("/"):
        raise HostileArchive(f"{name!r}: is an absolute path")
    if "\0" in name:
        raise HostileArchive(f"{name!r}: has a NUL byte in its name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise HostileArchive(f"{name!r}: its name is not UTF-8") from None
    parts = [p for p in name.rstrip("/").split("/") if p != "."]
    if ".." in parts:
        raise HostileArchive(f"{name!r}: has a '..' component")
    if not parts or "" in parts:
        raise HostileArchive(f"{name!r}: is not a relative path of plain names")
    key = "/".join(parts)
    is_dir = member.type == tarfile.DIRTYPE
    if key in seen and not (is_dir and seen[key]):
        raise HostileArchive(f"{name!r}: is a duplicate name")
    for i in range(1, len(parts)):
        if seen.get("/".join(parts[:i])) is False:
            raise HostileArchive(f"{name!r}: its parent {'/'.join(parts[:i])!r} is a file")
    seen[key] = is_dir
    return parts


def _opendir(parent: int, name: str) -> int:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)


def _makedirs(root: int, parts: list[str]) -> int:
    """Open (creating as needed) the directory ``parts`` under ``root``, never following a symlink."""
    fd = os.dup(root)
    try:
        for part in parts:
            nxt = _opendir(fd, part)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR):
            raise HostileArchive(f"{'/'.join(parts)!r}: cannot be created: {exc.strerror}") from None
        raise
    return fd


def _write_file(root: int, parts: list[str], source: IO[bytes], mode: int) -> None:
    parent = _makedirs(root, parts[:-1])
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, 0o755 if mode & 0o111 else 0o644, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP, errno.EISDIR):
                raise HostileArchive(f"{'/'.join(parts)!r}: cannot be created: {exc.strerror}") from None
            raise
        with open(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
    finally:
        os.close(parent)
