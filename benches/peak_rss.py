"""Run a command and report its process tree's peak RSS: ``python benches/peak_rss.py CMD [ARG ...]``.

``ru_maxrss`` survives ``exec``: a child forked from a large process (a pytest run that has grown to
hundreds of MB) starts with its parent's high-water mark. This launcher is small, so the command it starts
and reaps with ``os.wait4`` carries only its own tree's peak. The last line on stderr is
``peak-rss-kib N``; the exit code is the command's.
"""

from __future__ import annotations

import os
import subprocess
import sys

MARK = "peak-rss-kib"


def main(argv: list[str]) -> int:
    """Run ``argv``, print its peak RSS in KiB to stderr, return its exit code."""
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    sys.stderr.write(f"\n{MARK} {usage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


def peak_kib(stderr: str) -> int:
    """The peak RSS (KiB) this launcher reported at the end of ``stderr``."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(MARK + " "):
            return int(line.split()[1])
    raise ValueError("no peak RSS line in the launcher's output")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
