#!/usr/bin/env python3
"""A fake porch for tests: ``fakeporch.py -intent FILE -out DIR [-structured]``.

Standard library only. Knobs (environment; remember the loop passes only ``PATH``, ``HOME``, ``LANG``
and ``CONDUCTOR_*`` through to porch):

``CONDUCTOR_FAKEPORCH_LOG=FILE``
    append one JSON line per call: ``{"argv", "env" (the whole environment porch got), "pid", "pgid",
    "sid", "time", "cwd", "stdin" (what fd 0 points at), "fds" (its open descriptors, the one listing
    /proc/self/fd included), "sig" (SigIgn and SigBlk masks from /proc/self/status)}``.
``CONDUCTOR_FAKEPORCH_MODE`` (default ``ok``)
    ``ok``       write ``<out>/<basename of intent>.out`` (the intent's bytes) and exit 0;
    ``fail``     print ``fakeporch: failing as asked`` to stderr and exit 3;
    ``sleep:N``  sleep N seconds (float), then behave like ``ok``;
    ``signal``   kill itself with SIGKILL;
    ``hang``     sleep forever;
    ``stubborn`` ignore SIGTERM and sleep forever (only SIGKILL stops it);
    ``family``   fork a child that sleeps forever (its pid goes to ``CONDUCTOR_FAKEPORCH_PIDFILE``),
                 then the parent sleeps forever too (for "timeout kills the whole group");
    ``spam``     write 5 MiB to stdout and 5 MiB to stderr (each ending with a marker line
                 ``END-OF-STDOUT`` / ``END-OF-STDERR``), then behave like ``ok``;
    ``daemon``   fork a child that sleeps 60 s holding stdout/stderr open (its pid goes to
                 ``CONDUCTOR_FAKEPORCH_PIDFILE``); the parent behaves like ``ok``.
    ``touch``    behave like ``ok``, then set the intent's mtime to now (``touch``);
    ``rewrite``  behave like ``ok``, then write the intent again with the same bytes (a new inode's worth
                 of events: truncate and write in place);
    ``mutate``   behave like ``ok``, then append a newline to the intent (new content on every run);
    ``delete``   behave like ``ok``, then delete the intent and exit 0.
``CONDUCTOR_FAKEPORCH_FAIL_MATCH=SUBSTRING``
    fail (stderr message, exit 3) when the intent path contains SUBSTRING, whatever the mode.
``CONDUCTOR_FAKEPORCH_HANG_MATCH=SUBSTRING``
    hang (sleep forever) when the intent path contains SUBSTRING, whatever the mode.
``CONDUCTOR_FAKEPORCH_PIDFILE=FILE``
    where ``family``/``daemon`` write the pid of the child they leave behind (one line, appended).

Usage errors exit 2, like porch. To run it under a specific interpreter (the clean environment may not
find ``python3`` on PATH), use :func:`install`, which writes a copy with an absolute ``#!`` line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def install(dest_dir: str, interpreter: str | None = None, name: str = "fakeporch") -> str:
    """Copy this script to ``dest_dir/name`` with ``#!<interpreter> -S`` and make it executable."""
    with open(__file__, encoding="utf-8") as fh:
        body = fh.read().split("\n", 1)[1]
    path = os.path.join(dest_dir, name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"#!{interpreter or sys.executable} -S\n{body}")
    os.chmod(path, 0o755)
    return path


def _parse(argv: list[str]) -> tuple[str, str, bool]:
    intent = out = None
    structured = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-intent" and i + 1 < len(argv):
            intent = argv[i + 1]
            i += 2
        elif arg == "-out" and i + 1 < len(argv):
            out = argv[i + 1]
            i += 2
        elif arg == "-structured":
            structured = True
            i += 1
        else:
            print(f"fakeporch: bad argument {arg!r}", file=sys.stderr)
            sys.exit(2)
    if intent is None or out is None:
        print("fakeporch: usage: -intent FILE -out DIR [-structured]", file=sys.stderr)
        sys.exit(2)
    return intent, out, structured


def _log(argv: list[str]) -> None:
    log = os.environ.get("CONDUCTOR_FAKEPORCH_LOG")
    if not log:
        return
    line = json.dumps(
        {
            "argv": argv,
            "env": dict(os.environ),
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "sid": os.getsid(0),
            "time": time.time(),
            "cwd": os.getcwd(),
            "stdin": os.readlink("/proc/self/fd/0"),
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
            "sig": _signal_masks(),
        }
    )
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _signal_masks() -> dict[str, str]:
    """SigIgn, SigBlk and SigCgt of this process, from /proc (hex masks)."""
    masks = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("SigIgn", "SigBlk"):
                masks[key] = value.strip()
    return masks


def _record_pid(pid: int) -> None:
    pidfile = os.environ.get("CONDUCTOR_FAKEPORCH_PIDFILE")
    if pidfile:
        with open(pidfile, "a", encoding="utf-8") as fh:
            fh.write(f"{pid}\n")


def _ok(intent: str, out: str) -> int:
    with open(intent, "rb") as fh:
        data = fh.read()
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, os.path.basename(intent) + ".out"), "wb") as fh:
        fh.write(data)
    print(f"fakeporch: wrote {os.path.basename(intent)}.out")
    return 0


def _fork_sleeper(seconds: float) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    _record_pid(pid)


def _after(mode: str, intent: str) -> None:
    """What the intent-touching modes do to their intent once the package is written."""
    if mode == "touch":
        os.utime(intent)
    elif mode in ("rewrite", "mutate"):
        with open(intent, "rb") as fh:
            data = fh.read()
        with open(intent, "wb") as fh:
            fh.write(data + (b"\n" if mode == "mutate" else b""))
    elif mode == "delete":
        os.unlink(intent)


_AFTER_MODES = ("touch", "rewrite", "mutate", "delete")


def main() -> int:
    """Behave like porch as the environment asks; return the exit code."""
    argv = sys.argv[:]
    intent, out, _structured = _parse(argv[1:])
    _log(argv)
    match = os.environ.get("CONDUCTOR_FAKEPORCH_FAIL_MATCH")
    mode = os.environ.get("CONDUCTOR_FAKEPORCH_MODE", "ok")
    hang = os.environ.get("CONDUCTOR_FAKEPORCH_HANG_MATCH")
    if hang and hang in intent:
        mode = "hang"
    if mode == "fail" or (match and match in intent):
        print("fakeporch: some output before failing")
        print(f"fakeporch: failing as asked for {intent}", file=sys.stderr)
        return 3
    if mode.startswith("sleep:"):
        time.sleep(float(mode.split(":", 1)[1]))
    elif mode == "signal":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "hang":
        while True:
            time.sleep(3600)
    elif mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(3600)
    elif mode == "family":
        _fork_sleeper(3600)
        while True:
            time.sleep(3600)
    elif mode == "spam":
        chunk = b"x" * 1023 + b"\n"
        streams = ((sys.stdout.buffer, b"END-OF-STDOUT\n"), (sys.stderr.buffer, b"END-OF-STDERR\n"))
        for stream, marker in streams:
            for _ in range(5 * 1024):
                stream.write(chunk)
            stream.write(marker)
            stream.flush()
    elif mode == "daemon":
        _fork_sleeper(60)
    elif mode in _AFTER_MODES:
        code = _ok(intent, out)
        _after(mode, intent)
        return code
    elif mode != "ok":
        print(f"fakeporch: unknown CONDUCTOR_FAKEPORCH_MODE {mode!r}", file=sys.stderr)
        return 2
    return _ok(intent, out)


if __name__ == "__main__":
    sys.exit(main())
