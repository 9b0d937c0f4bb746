"""What the README and docs/operations.md promise an operator, checked end to end (issue 15).

Every test goes through the real command line, a real loop process or a real HTTP scrape, so it stays
valid whatever the loop's internals become. Items:

1. a graceful stop finishes only the intents whose porch is running (bounded by ``--timeout`` + 5 s);
2. every gauge is true at every scrape, ``conductor_queue_depth`` included;
3. ``run --once`` leaves a file that another process still holds open for writing;
4. ``priority`` orders the queue (once mode, a watch-mode burst, retries);
5. ``--dry-run`` makes the same dedupe decision as a real run;
6. ``conductor_last_success_timestamp_seconds`` survives a restart;
7. ``duration_ms`` and the histogram cover take to filing; the status file lists each attempt;
8. ``conductor_rescans_total`` counts rescans, ``conductor_sweeps_total`` counts sweeps;
9. ``config show`` accepts the Go spellings;
10. ``--log-level`` help lists ``critical``; the examples come last in every ``--help``;

and the docs-truth test: every metric the README and docs/alerts.yml name is in a real scrape, and every
command-line example in the README and the operations guide parses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, intent_body, read_calls, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------ helpers


def scrape(loop: LoopProcess) -> dict[str, float]:
    """Unlabelled samples of one real scrape, by sample name."""
    code, text = loop.get("/metrics")
    assert code == 200, text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if not s.labels:
                out[s.name] = float(s.value)
    return out


def scrape_text(loop: LoopProcess) -> str:
    code, text = loop.get("/metrics")
    assert code == 200, text
    return text


def status_json(handoff: Path) -> dict[str, Any]:
    """``conductor-loop status --json``, through the real CLI."""
    r = run_cli("status", "--handoff", str(handoff), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def called_intents(porch_log: Path) -> list[str]:
    """Intent file names in the order porch was called for them."""
    names = []
    for call in read_calls(porch_log):
        argv = call["argv"]
        names.append(os.path.basename(argv[argv.index("-intent") + 1]))
    return names


def in_handoff(handoff: Path) -> list[str]:
    return sorted(p.name for p in handoff.glob("intent-*.json"))


def script_porch(tmp_path: Path, name: str, body: str) -> Path:
    """A porch written as a small Python script (run by this interpreter)."""
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


#: A porch that logs each call (intent, attempt, time) to $CONDUCTOR_T_LOG, hangs on the first attempt of
#: an intent whose name contains $CONDUCTOR_T_HANG_FIRST, otherwise sleeps $CONDUCTOR_T_SLEEP and succeeds.
ATTEMPT_PORCH = """
import json, os, sys, time
argv = sys.argv[1:]
intent, out = argv[argv.index("-intent") + 1], argv[argv.index("-out") + 1]
attempt = os.environ.get("CONDUCTOR_ATTEMPT", "?")
with open(os.environ["CONDUCTOR_T_LOG"], "a") as f:
    f.write(json.dumps({"intent": os.path.basename(intent), "attempt": attempt, "time": time.time()}) + "\\n")
hang = os.environ.get("CONDUCTOR_T_HANG_FIRST")
if hang and hang in intent and attempt == "1":
    while True:
        time.sleep(3600)
time.sleep(float(os.environ.get("CONDUCTOR_T_SLEEP", "0")))
os.makedirs(out, exist_ok=True)
with open(intent, "rb") as src, open(os.path.join(out, os.path.basename(intent) + ".out"), "wb") as dst:
    dst.write(src.read())
"""


def attempt_calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------- 1. bounded graceful stop


def test_sigterm_finishes_only_running_intents_and_leaves_the_rest(
    handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path
) -> None:
    total = 20
    bodies = {}
    for i in range(total):
        bodies[f"intent-{i:02d}.json"] = write_intent(handoff, f"intent-{i:02d}.json", target=f"t{i}").read_bytes()
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:1"}
    loop = LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--workers", "1",
                       "--timeout", "2s", env=env)
    try:
        wait_for(lambda: read_calls(porch_log), timeout=60, what="first porch call")
        started = len(read_calls(porch_log))
        t0 = time.monotonic()
        loop.signal(signal.SIGTERM)
        rc = loop.proc.wait(120)
        elapsed = time.monotonic() - t0
    finally:
        loop.close()
    assert rc == 0
    calls = called_intents(porch_log)
    # Only what was running when SIGTERM came (one worker; one more may have started in the race).
    assert len(calls) <= started + 1, calls
    filed = sorted(p.name for p in (handoff / "processed").glob("*.json"))
    assert filed == sorted(calls)
    left = in_handoff(handoff)
    assert sorted(left + filed) == sorted(bodies)
    done = statuses(handoff)
    for name in left:  # handed back untouched: same content, no status file
        assert (handoff / name).read_bytes() == bodies[name]
        assert name not in done
    # The batch alone would take 20 s: the stop is bounded by --timeout (2 s) + 5 s, not by the backlog.
    assert elapsed < 2 + 5 + 8, f"SIGTERM took {elapsed:.1f}s"
    # The next start runs the rest, each exactly once.
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch),
                env={"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}, timeout=240)
    assert r.returncode == 0, r.stderr
    assert in_handoff(handoff) == []
    assert sorted(called_intents(porch_log)) == sorted(bodies)


# ----------------------------------------------------------------- 2. gauges under load


def test_every_gauge_matches_status_under_load(handoff: Path, out_dir: Path, fake_porch: Path,
                                               porch_log: Path) -> None:
    for i in range(100):
        write_intent(handoff, f"intent-{i:03d}.json", target=f"t{i}")
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.3"}
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--workers", "1",
                     env=env) as loop:
        loop.ready(60)
        wait_for(lambda: read_calls(porch_log), timeout=60, what="first porch call")
        seen: list[tuple[dict[str, float], dict[str, Any], dict[str, float]]] = []

        def agreeing_sample() -> bool:
            before = scrape(loop)
            live = status_json(handoff)["live"]
            after = scrape(loop)
            if live is None:
                return False
            seen.append((before, live, after))
            # The status figures are at most about a second old: while it shows a real queue, a scrape
            # on either side of it must show one too (docs/alerts.yml relies on it).
            if live["queue"] >= 10 and (live.get("age_seconds") or 0) < 2:
                assert before["conductor_queue_depth"] > 0 or after["conductor_queue_depth"] > 0, (
                    f"status shows {live['queue']} queued, scrapes show {before['conductor_queue_depth']} "
                    f"and {after['conductor_queue_depth']}"
                )
            stable = all(before[k] == after[k] for k in
                         ("conductor_queue_depth", "conductor_workers", "conductor_workers_busy"))
            return bool(
                stable
                and live["queue"] > 0
                and before["conductor_queue_depth"] == live["queue"]
                and before["conductor_workers"] == live["workers"]
                and before["conductor_workers_busy"] == live["busy"]
            )

        wait_for(agreeing_sample, timeout=90, interval=0.2,
                 what="a scrape whose queue, workers and busy gauges agree with status (queue > 0)")
        assert loop.stop() == 0


# ------------------------------------------------------------- 3. open writers at scan time


WRITER = """
import os, sys
with open(sys.argv[1], "wb") as f:
    f.write(sys.argv[2].encode())
    f.flush()
    print("ready", flush=True)
    rest = sys.stdin.readline()  # keep the file open until told to finish
    f.write(sys.argv[3].encode())
"""


def test_once_leaves_a_file_still_open_for_writing(handoff: Path, out_dir: Path) -> None:
    for i in range(3):
        write_intent(handoff, f"intent-ok{i}.json", target=f"t{i}")
    body = json.dumps(intent_body(target="open"))
    half = len(body) // 2
    target = handoff / "intent-open.json"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), body[:half], body[half:]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # quiet for ten debounces, still open
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--debounce", "100ms",
                    timeout=180)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "processed 3, skipped 0, failed 0" in r.stdout
        assert target.read_text() == body[:half]  # left in place, untouched
        assert not list((handoff / "failed").iterdir())
        assert "intent-open.json" not in statuses(handoff)
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert writer.wait(30) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--debounce", "100ms",
                timeout=180)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert statuses(handoff)["intent-open.json"]["status"] == "success"


# ---------------------------------------------------------------------------- 4. priority


def test_priority_first_in_once_mode(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    for i in range(40):
        write_intent(handoff, f"intent-{i:02d}.json", target=f"t{i}")
    write_intent(handoff, "intent-urgent.json", target="urgent", priority=10)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch),
                "--workers", "1", env={"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}, timeout=240)
    assert r.returncode == 0, r.stderr
    order = called_intents(porch_log)
    assert len(order) == 41
    assert order.index("intent-urgent.json") <= 1, order


def test_priority_in_once_mode_does_not_wait_behind_batches_already_cut(
    handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path
) -> None:
    for i in range(40):
        write_intent(handoff, f"intent-{i:02d}.json", target=f"t{i}")
    time.sleep(2.2)  # these are settled at start; the urgent one settles 2 s after it is written
    urgent = write_intent(handoff, "intent-urgent.json", target="urgent", priority=10)
    ready_at = urgent.stat().st_mtime + 2.0
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.2"}
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch),
                "--workers", "1", "--debounce", "2s", env=env, timeout=240)
    assert r.returncode == 0, r.stderr
    calls = read_calls(porch_log)
    order = called_intents(porch_log)
    assert len(order) == 41
    started_before = sum(1 for c in calls if c["time"] < ready_at)
    # Once settled it goes next: only what had started by then (and one in the race) precedes it.
    assert order.index("intent-urgent.json") <= started_before + 1, (started_before, order)


def test_priority_first_in_a_watch_mode_burst(handoff: Path, out_dir: Path, fake_porch: Path,
                                              porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.2"}
    with LoopProcess(handoff, out_dir, "--debounce", "200ms", "--porch", str(fake_porch), "--workers", "1",
                     env=env) as loop:
        loop.ready(60)
        for i in range(40):
            write_intent(handoff, f"intent-{i:02d}.json", target=f"t{i}")
        write_intent(handoff, "intent-urgent.json", target="urgent", priority=10)
        wait_for(lambda: "intent-urgent.json" in called_intents(porch_log), timeout=120, what="urgent ran")
        order = called_intents(porch_log)
        # At most the intent running when it settled (and one in the race) went before it.
        assert order.index("intent-urgent.json") <= 2, order
        wait_for(lambda: len(called_intents(porch_log)) == 41, timeout=180, what="all ran")
        assert loop.stop() == 0


def test_priority_applies_to_retries(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "attempts.jsonl"
    porch = script_porch(tmp_path, "attemptporch", ATTEMPT_PORCH)
    for i in range(30):
        write_intent(handoff, f"intent-{i:02d}.json", target=f"t{i}")
    write_intent(handoff, "intent-urgent.json", target="urgent", priority=10)
    env = {"CONDUCTOR_T_LOG": str(log), "CONDUCTOR_T_HANG_FIRST": "urgent", "CONDUCTOR_T_SLEEP": "0.5"}
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(porch),
                "--workers", "1", "--timeout", "1s", "--retries", "2", env=env, timeout=240)
    assert r.returncode == 0, r.stderr
    calls = attempt_calls(log)
    names = [(c["intent"], c["attempt"]) for c in calls]
    first = names.index(("intent-urgent.json", "1"))
    second = names.index(("intent-urgent.json", "2"))
    assert first <= 1, names
    # After its 0.5 s backoff the retry goes before the backlog: only intents started meanwhile precede it.
    assert second - first <= 4, names
    assert statuses(handoff)["intent-urgent.json"]["status"] == "success"


# ---------------------------------------------------------------------------- 5. dry run


def test_dry_run_makes_the_same_dedupe_decision(handoff: Path, out_dir: Path) -> None:
    body = json.dumps(intent_body(target="dup")).encode()
    (handoff / "intent-dup.json").write_bytes(body)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), timeout=120)
    assert r.returncode == 0, r.stderr
    first = statuses(handoff)["intent-dup.json"]
    (handoff / "intent-dup.json").write_bytes(body)  # the very same content again: a real run skips it
    write_intent(handoff, "intent-new.json", target="new")
    write_intent(handoff, "intent-bad.json", replicas=0)
    r = run_cli("run", "--dry-run", "--handoff", str(handoff), "--out", str(out_dir), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[2].rstrip(":"): line for line in r.stdout.splitlines() if line.startswith("would ")}
    assert lines["intent-dup.json"].startswith("would skip"), r.stdout
    assert "duplicate" in lines["intent-dup.json"]
    assert first["timestamp"][:19] in lines["intent-dup.json"] or first["sha256"][:12] in lines["intent-dup.json"]
    assert lines["intent-new.json"].startswith("would run"), r.stdout
    assert lines["intent-bad.json"].startswith("would fail"), r.stdout
    assert sorted(in_handoff(handoff)) == ["intent-bad.json", "intent-dup.json", "intent-new.json"]
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), timeout=120)
    assert r.returncode == 8
    got = statuses(handoff)
    assert (got["intent-dup.json"]["status"], got["intent-new.json"]["status"], got["intent-bad.json"]["status"]) \
        == ("skipped", "success", "failed")


# ------------------------------------------------------------ 6. last success after restart


def test_last_success_timestamp_survives_a_restart(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json")
    before = time.time()
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), timeout=120)
    after = time.time()
    assert r.returncode == 0, r.stderr
    with LoopProcess(handoff, out_dir, "--debounce", "50ms") as loop:
        loop.ready(60)
        value = scrape(loop)["conductor_last_success_timestamp_seconds"]
        assert before - 1 <= value <= after + 1, (before, value, after)
        assert loop.stop() == 0


# ------------------------------------------------------------ 7. durations over all attempts


def test_duration_covers_every_attempt(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_HANG_MATCH": "intent-hang"}
    with LoopProcess(handoff, out_dir, "--debounce", "50ms", "--porch", str(fake_porch), "--timeout", "500ms",
                     "--retries", "2", "--workers", "1", env=env) as loop:
        loop.ready(60)
        write_intent(handoff, "intent-hang.json")
        wait_for(lambda: (handoff / "failed" / "intent-hang.json").exists(), timeout=120, what="filed as failed")
        doc = statuses(handoff)["intent-hang.json"]
        m = wait_for(lambda: (s := scrape(loop)) and s.get("conductor_processing_seconds_count") == 1 and s,
                     timeout=30, what="histogram observed")
        assert loop.stop() == 0
    assert doc["status"] == "failed"
    assert doc["attempts"] == 3  # the count, as before
    log = doc["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    for a in log:
        assert isinstance(a["duration_ms"], (int, float)) and a["duration_ms"] >= 500
        assert isinstance(a["outcome"], str) and a["outcome"]
    assert log[-1]["outcome"] == "failed"
    attempts_ms = sum(a["duration_ms"] for a in log)
    # From take to filing: every attempt plus the backoffs between them (0.5 s, then 1 s).
    assert doc["duration_ms"] >= attempts_ms + 1400, (doc["duration_ms"], log)
    assert m["conductor_processing_seconds_sum"] >= doc["duration_ms"] / 1000 * 0.99


# -------------------------------------------------------------------- 8. sweeps vs rescans


def test_sweeps_are_counted_apart_from_rescans(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms") as loop:  # a sweep every 0.5 s
        loop.ready(60)
        m = wait_for(lambda: (s := scrape(loop)) and s.get("conductor_sweeps_total", 0) >= 3 and s,
                     timeout=60, what="three sweeps counted")
        assert m["conductor_rescans_total"] == 0
        text = scrape_text(loop)
        assert loop.stop() == 0
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    assert "sweep" not in helps["conductor_rescans_total"].lower()
    assert "sweep" in helps["conductor_sweeps_total"].lower()
    readme = (REPO / "README.md").read_text()
    rescans_row = next(line for line in readme.splitlines() if line.startswith("| `conductor_rescans_total`"))
    assert "sweep" not in rescans_row
    assert any(line.startswith("| `conductor_sweeps_total`") for line in readme.splitlines())


# ----------------------------------------------------------------------- 9. config show


def test_config_show_accepts_go_spellings(tmp_path: Path) -> None:
    r = run_cli("config", "show", "-handoff", str(tmp_path / "x"), "-once", "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["handoff"]["value"] == str(tmp_path / "x")
    assert doc["handoff"]["source"].startswith("flag")
    assert doc["once"]["value"] in (True, "true")


# ---------------------------------------------------------------------------- 10. help


HELP_PATHS = [[], ["run"], ["validate"], ["porch"], ["status"], ["retry"], ["state"], ["state", "export"],
              ["state", "import"], ["state", "prune"], ["config"], ["config", "show"]]


def test_log_level_help_lists_critical() -> None:
    r = run_cli("run", "--help", timeout=60)
    assert r.returncode == 0
    line = next(line for line in r.stdout.splitlines() if "--log-level" in line)
    for level in ("debug", "info", "warning", "error", "critical"):
        assert level in line, line


@pytest.mark.parametrize("path", HELP_PATHS, ids=lambda p: " ".join(p) or "top")
def test_examples_come_last_in_help(path: list[str]) -> None:
    r = run_cli(*path, "--help", timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    heads = [i for i, line in enumerate(lines) if re.match(r"^\s*Examples?:\s*$", line)]
    assert heads, r.stdout
    tail = lines[heads[-1] + 1:]
    assert tail and all(line.strip().startswith("conductor-loop ") or line.strip().startswith("CONDUCTOR_")
                        for line in tail), r.stdout


# ------------------------------------------------------------------------ docs truth


#: Served only in fleet mode (the ingest's, the workers'): checked by a real scrape in tests/test_fleet_*.
FLEET_METRICS = ("conductor_fleet", "conductor_worker")


def documented_metrics() -> set[str]:
    names: set[str] = set()
    for doc in ("README.md", "docs/alerts.yml", "docs/operations.md"):
        names |= set(re.findall(r"\bconductor_[a-z_]*[a-z]", (REPO / doc).read_text()))
    return {n for n in names if not n.startswith("conductor_loop")}  # the Python package, not a metric


def test_every_documented_metric_is_in_a_real_scrape(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, "--debounce", "50ms") as loop:
        loop.ready(60)
        write_intent(handoff, "intent-a.json")  # so that the histogram has buckets with counts too
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), what="filed")
        text = scrape_text(loop)
        assert loop.stop() == 0
    served: set[str] = set()
    for fam in text_string_to_metric_families(text):
        served.add(fam.name)
        served |= {s.name for s in fam.samples}
    documented = {n for n in documented_metrics() if not n.startswith(FLEET_METRICS)}  # tests/test_fleet_*
    assert "conductor_queue_depth" in documented and "conductor_processing_seconds_bucket" in documented
    assert sorted(documented - served) == []
    assert any(n.startswith("process_") for n in served) and any(n.startswith("python_") for n in served)


def documented_commands() -> list[str]:
    """``conductor-loop ...`` lines of fenced code blocks and table cells in the README and operations guide."""
    found: list[str] = []
    for doc in ("README.md", "docs/operations.md"):
        fenced = False
        for raw in (REPO / doc).read_text().splitlines():
            line = raw.strip()
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                if line.startswith("conductor-loop "):
                    found.append(line)
            elif line.startswith("|"):
                found += re.findall(r"`(conductor-loop [^`]*)`", line)
    return found


PLACEHOLDERS = {"DIR": "/nonexistent/dir", "FILE": "/nonexistent/file.json", "FILE...": "/nonexistent/a.json",
                "N": "3", "SIZE": "1MiB", "NAME...": "intent-a.json", "NAME": "intent-a.json"}


def concrete(line: str) -> list[str]:
    """A documented command line with its placeholders replaced by sensible values."""
    line = re.sub(r"\s+#.*$", "", line)  # a trailing comment
    line = line.split(" | ")[0]  # a pipe into another tool
    line = line.replace("(NAME... | --all-failed)", "--all-failed").replace("[run options...]", "")
    line = line.replace("[", " ").replace("]", " ")
    words = shlex.split(line)
    return [PLACEHOLDERS.get(w, w) for w in words[1:]]


def test_documented_commands_exist() -> None:
    cmds = documented_commands()
    assert any(c.startswith("conductor-loop status") for c in cmds)
    assert any(c.startswith("conductor-loop -handoff") for c in cmds)


@pytest.mark.parametrize("line", sorted(set(documented_commands())))
def test_every_documented_command_line_parses(line: str) -> None:
    r = run_cli(*concrete(line), "--help", timeout=60)
    assert r.returncode == 0, (line, concrete(line), r.stdout[-500:], r.stderr[-1000:])
