"""The result archive: a package round-trips; hostile archives are refused with their reason, nothing is
written outside the destination, and the destination is gone after a refusal."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from conductor_loop.fleet.archive import HostileArchive, PackRefused, _BoundedInflate, pack, unpack_checked
from needs import missing

CAP = 1 << 20


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def _member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


def _package(root: Path) -> None:
    (root / "ns" / "t-scaling").mkdir(parents=True)
    (root / "ns" / "t-scaling" / "Kptfile").write_text("apiVersion: kpt.dev/v1\n")
    (root / "ns" / "t-scaling" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "ns" / "t-scaling" / "run.sh", 0o755)
    (root / "empty").mkdir()


def test_pack_then_unpack_round_trips(tmp_path: Path) -> None:
    _package(tmp_path / "out")
    packed = pack(str(tmp_path / "out"), CAP)
    assert packed.files == 2 and packed.content_bytes == len("apiVersion: kpt.dev/v1\n") + len("#!/bin/sh\n")
    assert unpack_checked(packed.data, str(tmp_path / "dest"), CAP) == 2
    pkg = tmp_path / "dest" / "ns" / "t-scaling"
    assert (pkg / "Kptfile").read_text() == "apiVersion: kpt.dev/v1\n"
    assert os.stat(pkg / "run.sh").st_mode & 0o111 and not os.stat(pkg / "Kptfile").st_mode & 0o111
    assert (tmp_path / "dest" / "empty").is_dir()
    assert os.stat(tmp_path / "dest").st_mode & 0o777 == 0o700


def test_empty_out_dir_packs_to_an_empty_archive(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    packed = pack(str(tmp_path / "out"), CAP)
    assert packed.files == 0
    assert unpack_checked(packed.data, str(tmp_path / "dest"), CAP) == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: os.symlink("/etc/passwd", d / "link"), "link: is a symlink"),
        (lambda d: [(d / "a").write_text("x"), os.link(d / "a", d / "b")], "is a hard link"),
        (lambda d: os.mkfifo(d / "fifo"), "fifo: is a FIFO"),
        (lambda d: (d / "big").write_bytes(b"\0" * (CAP + 1)), "larger than the result cap"),
    ],
)
def test_pack_refuses_what_a_package_may_not_hold(tmp_path: Path, make: object, reason: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    make(out)  # type: ignore[operator]
    with pytest.raises(PackRefused, match=reason):
        pack(str(out), CAP)


def test_pack_refuses_an_out_dir_replaced_by_a_symlink(tmp_path: Path) -> None:
    _package(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(PackRefused, match="no longer a directory"):
        pack(str(tmp_path / "out"), CAP)


def test_pack_refuses_a_device(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    try:
        os.mknod(out / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        missing("mknod needs root (CI runs as root)")
    with pytest.raises(PackRefused, match="null: is a device"):
        pack(str(out), CAP)


def test_pack_refuses_an_incompressible_archive_over_the_cap(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "r").write_bytes(os.urandom(CAP - 100))  # contents fit, the tar around them does not
    with pytest.raises(PackRefused, match="result cap"):
        pack(str(out), CAP)


HOSTILE = [
    ([(_member("../escape"), b"x")], "'..' component"),
    ([(_member("a/../../escape"), b"x")], "'..' component"),
    ([(_member("/tmp/abs"), b"x")], "absolute path"),
    ([(_member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)], "is a symlink"),
    ([(_member("hard", tarfile.LNKTYPE, linkname="etc/passwd"), None)], "is a hard link"),
    ([(_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None)], "is a character device"),
    ([(_member("blk", tarfile.BLKTYPE), None)], "is a block device"),
    ([(_member("fifo", tarfile.FIFOTYPE), None)], "is a FIFO"),
    ([(_member("a"), b"1"), (_member("a"), b"2")], "duplicate name"),
    ([(_member("d", tarfile.DIRTYPE), None), (_member("d"), b"2")], "duplicate name"),
    ([(_member("f"), b"1"), (_member("f/g"), b"2")], "parent 'f' is a file"),
    ([(_member("big"), b"\0" * (CAP + 1))], "more than its cap"),
    ([(_member(f"m{i}"), b"\0" * (CAP // 4)) for i in range(5)], "more than its cap"),
    ([(_member("a//b"), b"x")], "relative path"),
]


@pytest.mark.parametrize(("members", "reason"), HOSTILE)
def test_hostile_archive_is_refused_and_nothing_is_written(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(HostileArchive, match=reason):
        unpack_checked(_tar(members), str(work / "dest"), CAP)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/abs").exists()


def test_gzip_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    # 64 MiB of zeros inflate from ~64 KiB: the declared size is refused before its data is inflated.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = _member("bomb")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    bomb = gzip.compress(raw.getvalue())
    assert len(bomb) < 1 << 20
    with pytest.raises(HostileArchive, match="more than its cap"):
        unpack_checked(bomb, str(tmp_path / "dest"), CAP)
    assert not (tmp_path / "dest").exists()


def test_inflating_stops_at_the_cap() -> None:
    # 64 MiB of zeros from 64 KiB of gzip: the reader refuses once it has inflated the cap.
    reader = _BoundedInflate(gzip.compress(b"\0" * (64 << 20)), CAP)
    with pytest.raises(HostileArchive, match="inflates to more than"):
        while reader.read(1 << 16):
            pass
    assert reader.seen <= CAP + 1


def test_garbage_after_the_members_is_never_unpacked(tmp_path: Path) -> None:
    tar = gzip.decompress(_tar([(_member("a"), b"x")]))[:-1024]  # no end-of-archive blocks
    bomb = gzip.compress(tar + b"\x01" * (64 << 20))
    assert unpack_checked(bomb, str(tmp_path / "dest"), CAP) == 1
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["a"]


@pytest.mark.parametrize("data", [b"", b"not gzip", gzip.compress(b"not a tar" * 100)])
def test_garbage_is_hostile(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(HostileArchive, match="not a valid"):
        unpack_checked(data, str(tmp_path / "dest"), CAP)


def test_existing_destination_is_never_reused(tmp_path: Path) -> None:
    os.symlink(tmp_path / "elsewhere", tmp_path / "dest")
    with pytest.raises(FileExistsError):
        unpack_checked(_tar([(_member("a"), b"x")]), str(tmp_path / "dest"), CAP)
    assert not (tmp_path / "elsewhere").exists()
