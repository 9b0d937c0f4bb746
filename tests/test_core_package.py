"""conductor_loop._core.write_package and install_tree through Python: the built-in porch's package directory."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from conductor_loop import _core
from conductor_loop.porch import _STALE_TEMP

NAME = "odu-scaling"
SETS = {
    "A": ["Kptfile", "README.md", "apply-replacements.yaml", "scaling-patch.yaml", "scaling-values.yaml"],
    "B": ["Kptfile", "scaling-patch.yaml"],
}


def files_of(tag: str) -> list[tuple[str, bytes]]:
    return [(name, f"{tag} {name}\n".encode()) for name in SETS[tag]]


def entries(path: Path) -> list[str]:
    return sorted(os.listdir(path))


@pytest.mark.parametrize("durable", [False, True])
def test_writes_the_files_and_makes_missing_directories(tmp_path: Path, durable: bool) -> None:
    ns = tmp_path / "out" / "ran"  # neither exists yet
    final = _core.write_package(str(ns), NAME, files_of("A"), durable)
    assert final == str(ns / NAME)
    assert entries(Path(final)) == SETS["A"]
    for name, data in files_of("A"):
        assert (Path(final) / name).read_bytes() == data
        assert (Path(final) / name).stat().st_mode & 0o7777 == 0o644 & ~current_umask()
    assert entries(ns) == [NAME] and entries(tmp_path / "out") == ["ran"]


def current_umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("durable", [False, True])
def test_replacing_an_existing_package_leaves_only_the_new_one(tmp_path: Path, durable: bool) -> None:
    _core.write_package(str(tmp_path), NAME, files_of("A"), durable)
    final = Path(_core.write_package(str(tmp_path), NAME, files_of("B"), durable))
    assert entries(final) == SETS["B"]
    assert (final / "Kptfile").read_bytes() == b"B Kptfile\n"
    assert entries(tmp_path) == [NAME]  # the old package and every temp directory gone


def test_a_file_at_the_final_name_is_replaced(tmp_path: Path) -> None:
    (tmp_path / NAME).write_text("not a package")
    final = Path(_core.write_package(str(tmp_path), NAME, files_of("B"), False))
    assert final.is_dir() and entries(tmp_path) == [NAME]


def test_unwritable_out_dir_raises_with_errno_and_path_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the out directory should be")
    with pytest.raises(NotADirectoryError) as info:
        _core.write_package(str(blocker / "ns"), NAME, files_of("A"), True)
    assert info.value.errno == errno.ENOTDIR
    assert info.value.strerror == os.strerror(errno.ENOTDIR)  # as os.mkdir gives it
    assert str(info.value.filename).startswith(str(blocker))
    assert entries(tmp_path) == ["blocker"] and blocker.read_text().startswith("a file")
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir(0o500)
        with pytest.raises(PermissionError):
            _core.write_package(str(ro), NAME, files_of("A"), False)
        assert entries(ro) == []


def test_a_failure_after_the_temp_directory_removes_it_and_keeps_the_old_package(tmp_path: Path) -> None:
    _core.write_package(str(tmp_path), NAME, files_of("B"), False)
    twice = [("Kptfile", b"new"), ("Kptfile", b"new")]
    with pytest.raises(FileExistsError) as info:
        _core.write_package(str(tmp_path), NAME, twice, True)
    temp = Path(info.value.filename)
    assert temp.name == "Kptfile" and _STALE_TEMP.match(temp.parent.name), temp  # the stale-temp pattern
    with pytest.raises(OSError) as too_long:
        _core.write_package(str(tmp_path), NAME, [("x" * 300, b"")], False)
    assert too_long.value.errno == errno.ENAMETOOLONG
    assert entries(tmp_path) == [NAME]
    assert (tmp_path / NAME / "Kptfile").read_bytes() == b"B Kptfile\n"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_bad_names_are_refused_before_anything_is_made(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        _core.write_package(str(tmp_path / "ns"), bad, files_of("B"), False)
    with pytest.raises(ValueError):
        _core.write_package(str(tmp_path / "ns"), NAME, [(bad, b"")], False)
    assert entries(tmp_path) == []


def test_install_tree(tmp_path: Path) -> None:
    new, final = tmp_path / "new", tmp_path / "final"
    new.mkdir()
    (new / "f").write_text("new")
    final.mkdir()
    (final / "old").write_text("old")
    _core.install_tree(str(new), str(final))
    assert entries(final) == ["f"] and entries(tmp_path) == ["final"]
    with pytest.raises(FileNotFoundError) as info:
        _core.install_tree(str(new), str(final))
    assert info.value.filename == str(new) and info.value.filename2 == str(final)


def hammer(ns: str, tag: str, rounds: int) -> None:
    for _ in range(rounds):
        _core.write_package(ns, NAME, files_of(tag), False)


def read_at(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def look(final: Path) -> bool:
    """Whether the package at ``final`` is one whole set; a mixed one only once it was swapped out."""
    dir_fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)  # FileNotFoundError: the final name was absent
    try:
        inode = os.fstat(dir_fd).st_ino
        names = sorted(os.listdir(dir_fd))
        try:
            tags = {read_at(dir_fd, n).split(b" ")[0].decode() for n in names}
        except FileNotFoundError:
            tags = set()
        if len(tags) == 1 and names == SETS[tags.pop()]:
            return True
        assert os.stat(final).st_ino != inode, f"mixed or half package at the final name: {names}"
        return False
    finally:
        os.close(dir_fd)


@pytest.mark.timeout(120)
def test_concurrent_replacement_never_shows_a_mixed_package(tmp_path: Path) -> None:
    final = Path(_core.write_package(str(tmp_path), NAME, files_of("B"), False))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=hammer, args=(str(tmp_path), tag, 300)) for tag in SETS]
    for p in procs:
        p.start()
    whole = 0
    deadline = time.monotonic() + 90
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        whole += look(final)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert whole > 0
    assert entries(tmp_path) == [NAME]
    assert look(final)
