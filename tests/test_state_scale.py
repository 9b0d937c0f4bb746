"""A start-up that does not grow with the state, and a streaming ``state import`` (README, "The state").

The integrity check runs after an unclean stop only (a real loop SIGKILLed, then started again); an
old-schema state migrates and every start-up query is served by an index (EXPLAIN QUERY PLAN on the SQL
the store really runs); the Go import streams (peak RSS of the real command in a subprocess), matches
the whole-file reading, imports nothing from a truncated file, and shows a progress bar on a terminal only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from conductor_loop import jsonstream, statedb
from conductor_loop.clock import parse_rfc3339
from conductor_loop.gostate import iter_go_rows
from conductor_loop.state import StateStore
from conftest import run_cli, write_intent
from loopproc import LoopProcess

#: Runs a command and reports its own tree's peak RSS (see its docstring).
PEAK_RSS = Path(__file__).resolve().parent.parent / "benches" / "peak_rss.py"

SHA = "ab" * 32


def checks(proc_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in proc_events if e.get("event") == "state.checked"]


def run_once_events(handoff: Path, out: Path) -> list[dict[str, Any]]:
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out), "--log-format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    return [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]


def test_integrity_check_runs_after_an_unclean_stop_only(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json", target="a")
    first = run_once_events(handoff, out_dir)
    assert checks(first) == []  # a new database: nothing to check
    assert checks(run_once_events(handoff, out_dir)) == []  # after a clean stop: not checked
    with LoopProcess(handoff, out_dir, metrics=False) as loop:
        loop.wait_event("loop.start")
        os.kill(loop.proc.pid, signal.SIGKILL)
        loop.proc.wait(30)
    again = checks(run_once_events(handoff, out_dir))
    assert len(again) == 1 and again[0]["reason"].startswith("unclean stop"), again
    assert isinstance(again[0]["seconds"], float)
    assert checks(run_once_events(handoff, out_dir)) == []  # that run stopped cleanly


def test_truncated_state_is_checked_even_after_a_clean_stop(handoff: Path) -> None:
    with StateStore(str(handoff)) as s:
        s.conn.execute("BEGIN")
        s.conn.executemany("INSERT INTO intents (path, status, first_seen, last_seen, message) "
                           "VALUES (?, 'success', 1, 1, ?)", [(f"/h/intent-{i}.json", "m" * 500) for i in range(100)])
        s.conn.execute("COMMIT")
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = handoff / ".conductor" / "state.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'shutdown'").fetchone() == ('"clean"',)
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size // 2)
    with StateStore(str(handoff)) as s:
        assert s.recovered_from is not None  # checked although it was closed cleanly, and moved aside


def _old_schema_state(handoff: Path, rows: int) -> None:
    """A state as schema 1 wrote it: only the first migration, user_version 1, no clean-stop mark."""
    d = handoff / ".conductor"
    d.mkdir(mode=0o700)
    conn = sqlite3.connect(d / "state.db", isolation_level=None)
    conn.executescript(statedb._MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO intents (path, sha256, size, status, first_seen, last_seen, processed_at, filed_at) "
        "VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
        [(f"/old/intent-{i:05d}.json", SHA, "failed" if i % 7 == 0 else "success", now, now, now - i,
          None if i % 100 == 0 else now - i) for i in range(rows)],
    )
    conn.execute("INSERT INTO intents (path, status, first_seen, last_seen) VALUES ('/old/busy', 'claimed', 1, 1)")
    conn.execute("COMMIT")
    conn.close()


def test_old_state_migrates_and_start_up_queries_use_an_index(handoff: Path) -> None:
    _old_schema_state(handoff, 3000)
    with StateStore(str(handoff)) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA_VERSION == 2
        assert s.opened.check_reason == "no clean-stop mark"  # a state from before the mark: checked once
        s.conn.execute("ANALYZE")  # what a real, long-used state may have: the plan must not depend on it
        seen: list[str] = []
        s.conn.set_trace_callback(seen.append)
        assert s.last_success_at() is not None
        assert len(s.unfiled()) == 30
        assert s.filed_before(time.time() - 1000, 10)
        s.get_meta("go_import")
        s.get_many(["/old/intent-00001.json", "/h/new.json"])
        s.conn.set_trace_callback(None)
        plans = {sql: [r[3] for r in s.conn.execute("EXPLAIN QUERY PLAN " + sql)] for sql in seen}
    assert len(plans) == 5
    for sql, plan in plans.items():
        for step in plan:
            full_scan = step.startswith("SCAN") and "USING INDEX intents_unfiled" not in step
            assert not full_scan and "TEMP B-TREE" not in step, f"{sql}: {plan}"
    with StateStore(str(handoff)) as s:
        assert s.opened.check_reason is None  # closed cleanly: not checked again


# ------------------------------------------------------------------------------------- import


STAMP = "2026-11-30T10:00:00.123456Z"


def go_file(path: Path, n: int, *, spaced: bool = False) -> None:
    """A Go state file of ``n`` entries (``spaced``: odd but valid layout, escaped keys, members in another
    order)."""
    sep = " \n\t " if spaced else ""
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"version": "1.0",' + sep + '"states": {')
        for i in range(n):
            p = f"/old/h\u00e9/intent-{i:07d}.json" if spaced else f"/old/h/intent-{i:07d}.json"
            status = "failed" if i % 10 == 0 else "processed"
            if spaced:
                entry = json.dumps({"file_path": p, "sha256": f"{i:064x}", "size": 200 + i % 50,
                                    "processed_at": STAMP, "status": status}, indent=1)
            else:
                entry = (f'{{"file_path": "{p}", "sha256": "{i:064x}", "size": {200 + i % 50}, '
                         f'"processed_at": "{STAMP}", "status": "{status}"}}')
            f.write(("," if i else "") + sep + json.dumps(p) + sep + ":" + sep + entry)
        f.write(sep + "}," + sep + '"saved_at": "2026-12-01T00:00:00Z", "extra": [1, {"a": [2.5e3]}]}' + sep)


def whole_file_rows(path: Path, now: float) -> list[tuple[Any, ...]]:
    """The rows as reading the whole file with json.loads gives them (the reference)."""
    from conductor_loop.gostate import _go_entry_to_row

    doc = json.loads(path.read_text(encoding="utf-8"))
    msg = f"imported from Go state {path}"
    return [_go_entry_to_row(k, v, now, msg) for k, v in doc["states"].items()]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_streamed_rows_match_whole_file_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    go = tmp_path / "go.json"
    go_file(go, 300, spaced=True)
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)  # every value split across reads somewhere
    seen: list[int] = []
    rows = list(iter_go_rows(str(go), 5.0, seen.append))
    assert rows == whole_file_rows(go, 5.0) and len(rows) == 300
    assert seen[-1] == go.stat().st_size and seen == sorted(seen)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_go_file_is_a_clear_error_and_imports_nothing(tmp_path: Path, cut: float) -> None:
    go = tmp_path / "go.json"
    go_file(go, 20_000)
    data = go.read_bytes()
    go.write_bytes(data[: int(len(data) * cut)])
    r = run_cli("state", "import", "--handoff", str(tmp_path / "h"), str(go))
    assert r.returncode == 1 and "not a Go state file: not valid JSON" in r.stderr, r.stderr
    with StateStore(str(tmp_path / "h")) as s:
        assert s.counts()["success"] == s.counts()["failed"] == 0  # one transaction: nothing half-imported


def _digest(rows: Any) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(tuple(r)).encode())
    return h.hexdigest()


def test_streaming_import_of_a_large_file_stays_small(tmp_path: Path) -> None:
    n = 200_000
    go = tmp_path / "go.json"
    go_file(go, n)  # ~50 MB: reading it whole took > 250 MB
    # Through the small launcher: a child forked from this (large) pytest process would carry its peak RSS.
    argv = [sys.executable, str(PEAK_RSS), sys.executable, "-m", "conductor_loop", "state", "import", "--handoff",
            str(tmp_path / "h"), str(go)]
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"imported {n} entries" in r.stdout
    m = re.search(r"^peak-rss-kib (\d+)$", r.stderr, re.M)
    assert m, r.stderr
    peak = int(m.group(1))
    print(f"peak RSS of the import: {peak // 1024} MiB")
    assert peak < 120 * 1024, f"peak RSS {peak} KiB"
    db = sqlite3.connect(tmp_path / "h" / ".conductor" / "state.db")
    got = db.execute("SELECT path, sha256, size, status, processed_at FROM intents ORDER BY path").fetchall()
    when = parse_rfc3339(STAMP)
    want = ((f"/old/h/intent-{i:07d}.json", f"{i:064x}", 200 + i % 50, "failed" if i % 10 == 0 else "success",
             when) for i in range(n))
    assert len(got) == n and _digest(got) == _digest(want)


def on_a_terminal(*args: str) -> str:
    """``conductor-loop ARGS`` with stdout and stderr on a pseudo-terminal: what it showed, escapes removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor_loop", *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(slave)
    raw = b""
    while True:
        if select.select([master], [], [], 60)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            raw += chunk
    assert proc.wait(60) == 0, raw[-2000:]
    os.close(master)
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", raw).decode("utf-8", "replace")


def test_import_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    go = tmp_path / "go.json"
    go_file(go, 5000)
    r = run_cli("state", "import", "--handoff", str(tmp_path / "plain"), str(go))
    assert r.returncode == 0 and "importing" not in r.stderr and "imported 5000 entries" in r.stdout
    text = on_a_terminal("state", "import", "--handoff", str(tmp_path / "tty"), str(go))
    size_mb = f"{go.stat().st_size / 1e6:.1f}"
    assert "importing" in text and f"{size_mb}/{size_mb} MB" in text, text
    assert "imported 5000 entries" in text


def test_export_to_a_file_shows_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    go = tmp_path / "go.json"
    go_file(go, 5000)
    h = str(tmp_path / "h")
    assert run_cli("state", "import", "--handoff", h, str(go)).returncode == 0
    with StateStore(h) as s:
        s.claim([("/old/h/intent-being-worked-on.json", None, None)])  # claimed: not exported, not counted
    r = run_cli("state", "export", "--handoff", h, "-o", str(tmp_path / "plain.json"))
    assert r.returncode == 0 and "exporting" not in r.stderr and "exported 5000 entries" in r.stderr
    text = on_a_terminal("state", "export", "--handoff", h, "-o", str(tmp_path / "tty.json"))
    assert "exporting" in text and "5000/5000" in text, text
    assert "exported 5000 entries" in text
    assert (tmp_path / "tty.json").read_bytes()[100:] == (tmp_path / "plain.json").read_bytes()[100:]  # saved_at aside


def test_retention_works_in_bounded_batches(handoff: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor_loop import retention
    from conductor_loop.layout import Layout
    from fakeclock import FakeClock

    monkeypatch.setattr(retention, "BATCH", 10)
    clock = FakeClock(wall=time.time())
    with StateStore(str(handoff)) as s:
        old = clock.time() - 30 * 86400
        s.conn.execute("BEGIN")
        rows = [(f"/h/intent-{i:02d}.json", old, old) for i in range(23)]
        s.conn.executemany("INSERT INTO intents (path, status, first_seen, last_seen, processed_at, filed_at) "
                           "VALUES (?, 'success', 1, 1, ?, ?)", rows)
        s.conn.execute("INSERT INTO intents (path, status, first_seen, last_seen, processed_at) "
                       "VALUES ('/h/never-filed.json', 'failed', 1, 1, ?)", (old,))
        s.conn.execute("COMMIT")
        r = retention.Retention(Layout(str(handoff)), 7 * 86400, clock)
        done = []
        while r.due():
            got = r.clean(s)
            if got is None:
                break
            done.append(got[1])
        assert done == [10, 10, 4]  # two full batches (only their rows), then the rest by age
        assert s.counts()["success"] == s.counts()["failed"] == 0


@pytest.mark.parametrize("text", ["2024-08-15T10:25:00Z", "2024-08-15T10:25:00.123456789Z", "1969-12-31T23:59:59.5Z",
                                  "0001-01-01T00:00:00+05:30", "2026-02-28T23:59:60.999999-07:00",
                                  "9999-12-31T23:59:59.999999Z", "2024-02-29 01:02:03.1+01:99"])
def test_fast_rfc3339_is_datetime_timestamp(text: str) -> None:
    from datetime import datetime, timedelta, timezone

    m = re.match(r"(\d+)-(\d+)-(\d+).(\d+):(\d+):(\d+)(?:\.(\d+))?(Z|([+-])(\d+):(\d+))$", text)
    assert m is not None
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    tz = timezone.utc if m[8] == "Z" else timezone((-1 if m[9] == "-" else 1) * timedelta(hours=int(m[10]),
                                                                                          minutes=int(m[11])))
    want = datetime(y, mo, d, h, mi, min(s, 59), int(((m[7] or "") + "000000")[:6]), tzinfo=tz).timestamp()
    assert parse_rfc3339(text) == want


@pytest.mark.parametrize("text", ["2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
                                  "2024-01-01T00:00:00+24:00", "2024-13-01T00:00:00Z"])
def test_fast_rfc3339_refuses_what_datetime_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@pytest.mark.parametrize("bad", ['"size": 2;', '"size": 2}}, "x"', '"size": 2, "size"', '"size": \x01'])
def test_malformed_entry_mid_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    go = tmp_path / "go.json"
    go_file(go, 50)
    text = go.read_text()
    at = text.index('"size": ', len(text) // 2)
    go.write_text(text[:at] + bad + text[text.index(",", at) + 1 :])
    monkeypatch.setattr(jsonstream, "CHUNK", 64)
    with pytest.raises(ValueError, match="not a Go state file: not valid JSON"):
        list(iter_go_rows(str(go), 0.0))
