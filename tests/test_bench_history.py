"""The benchmark history and regression check (benches/history.py, report.py, plot_history.py).

Fake reports and fake histories only: no benchmark is run. The check and the report are run as the
Makefile runs them (subprocesses of the scripts), so exit codes and printed lines are what a developer sees.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHES = REPO / "benches"
sys.path.insert(0, str(BENCHES))

import history  # noqa: E402
from figures import Figure, figures  # noqa: E402

THROUGHPUT = "once builtin 5000 intents"
LATENCY = "watch latency p99"
LOST = "watch lost"
OTHER_FACTS = {"cpu_model": "Some Other CPU 9000", "cores": 64, "fs_type": "xfs", "kernel": "6.1", "python": "3.12"}


def rate(ratio: float, name: str = THROUGHPUT) -> Figure:
    """A higher-is-better figure with the given ratio to a baseline of 1000 intents/s."""
    return Figure(name, 1000.0 * ratio, "intents/s", "(a) file-operation floor", 1000.0, 0.85, True)


def latency(ms: float) -> Figure:
    """A lower-is-better figure: ``ms`` against a budget of 550 ms."""
    return Figure(LATENCY, ms, "ms", "debounce + 50 ms", 550.0, 1.0, False)


def lost(n: int) -> Figure:
    """The "intents lost" figure: 0 against a baseline of 0 is an infinite ratio."""
    return Figure(LOST, float(n), "intents", "none lost", 0.0, 1.0, False)


def write_history(path: Path, runs: list[tuple[str, list[Figure]]], facts: dict[str, Any] | None = None) -> None:
    """A history of ``(commit, figures)`` runs on this machine (or on ``facts``)."""
    facts = facts or history.machine_facts()
    for n, (commit, figs) in enumerate(runs):
        date = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=n)
        history.append(path, history.run_record(figs, facts, commit, False, date))


def write_report(path: Path, figs: list[Figure]) -> Path:
    """A pytest-benchmark JSON report holding ``figs`` the way ``record_figure`` stores them."""
    benches = [
        {"name": f"test_{i}", "extra_info": {
            "figure": f.name, "value": f.value, "unit": f.unit, "baseline_name": f.baseline_name,
            "baseline_value": f.baseline_value, "target_ratio": f.target_ratio,
            "higher_is_better": f.higher_is_better}}
        for i, f in enumerate(figs)
    ]
    benches.append({"name": "test_without_figure", "extra_info": {}})
    path.write_text(json.dumps({"benchmarks": benches}))
    return path


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python benches/<script> args…`` as the Makefile runs it."""
    return subprocess.run([sys.executable, str(BENCHES / script), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, check=False)


def check(tmp_path: Path, past: list[tuple[str, list[Figure]]], now: list[Figure], *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Write a history and a report, then run ``history.py check`` on them."""
    hist = tmp_path / "history.jsonl"
    if past:
        write_history(hist, past)
    report = write_report(tmp_path / "report.json", now)
    return run("history.py", "check", str(report), "--history", str(hist), *args, env=env)


def lines(out: str, head: str) -> list[str]:
    return [x for x in out.splitlines() if x.startswith(head)]


def test_30_percent_drop_fails_naming_the_figure_and_the_better_commit(tmp_path: Path) -> None:
    past = [("a" * 40, [rate(1.0), latency(500)]), ("b" * 40, [rate(2.0), latency(500)]),
            ("c" * 40, [rate(1.9), latency(500)])]
    r = check(tmp_path, past, [rate(1.4), latency(500)])
    assert r.returncode == 1, r.stdout + r.stderr
    bad = lines(r.stdout, "REGRESSED")
    assert len(bad) == 1, r.stdout
    assert THROUGHPUT in bad[0] and "bbbbbbbbbb" in bad[0] and "-30%" in bad[0], bad[0]
    assert lines(r.stdout, "ok") and "1 figure(s) regressed" in r.stdout


def test_5_percent_drop_passes(tmp_path: Path) -> None:
    r = check(tmp_path, [("a" * 40, [rate(1.0)])], [rate(0.95)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert not lines(r.stdout, "REGRESSED")
    assert "-5%" in lines(r.stdout, "ok")[0]


def test_a_new_figure_is_reported_not_failed(tmp_path: Path) -> None:
    r = check(tmp_path, [("a" * 40, [rate(1.0)])], [rate(1.0), rate(0.01, "brand new figure")])
    assert r.returncode == 0, r.stdout + r.stderr
    new = lines(r.stdout, "new")
    assert len(new) == 1 and "brand new figure" in new[0], r.stdout


def test_no_history_at_all_passes(tmp_path: Path) -> None:
    r = check(tmp_path, [], [rate(1.0), latency(500)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(lines(r.stdout, "new")) == 2


def test_another_machine_kinds_history_is_ignored(tmp_path: Path) -> None:
    hist = tmp_path / "history.jsonl"
    write_history(hist, [("f" * 40, [rate(10.0), latency(50)])], OTHER_FACTS)
    write_history(hist, [("a" * 40, [rate(1.0)])])
    report = write_report(tmp_path / "report.json", [rate(1.0), latency(500)])
    r = run("history.py", "check", str(report), "--history", str(hist))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ffffffffff" not in r.stdout
    assert THROUGHPUT in lines(r.stdout, "ok")[0]
    assert LATENCY in lines(r.stdout, "new")[0]


def test_a_latency_getting_worse_is_a_drop(tmp_path: Path) -> None:
    r = check(tmp_path, [("a" * 40, [latency(500)])], [latency(700)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert LATENCY in lines(r.stdout, "REGRESSED")[0]
    (tmp_path / "history.jsonl").unlink()
    better = check(tmp_path, [("a" * 40, [latency(500)])], [latency(400)])
    assert better.returncode == 0, better.stdout
    assert "+25%" in lines(better.stdout, "ok")[0]


def test_intents_lost_after_none_lost_is_a_drop(tmp_path: Path) -> None:
    r = check(tmp_path, [("a" * 40, [lost(0)]), ("b" * 40, [lost(0)])], [lost(3)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{LOST}: 0.00x, best recent inf at bbbbbbbbbb" in lines(r.stdout, "REGRESSED")[0]
    line = (tmp_path / "history.jsonl").read_text().splitlines()[0]
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert history.load(tmp_path / "history.jsonl")[0].ratio(LOST) == math.inf


def test_tolerance_flag_and_environment(tmp_path: Path) -> None:
    past = [("a" * 40, [rate(1.0)])]
    assert check(tmp_path, past, [rate(0.8)]).returncode == 1
    (tmp_path / "history.jsonl").unlink()
    assert check(tmp_path, past, [rate(0.8)], "--tolerance", "0.25").returncode == 0
    (tmp_path / "history.jsonl").unlink()
    assert check(tmp_path, past, [rate(0.88)], env={"BENCH_TOLERANCE": "0.1"}).returncode == 1
    (tmp_path / "history.jsonl").unlink()
    assert check(tmp_path, past, [rate(0.8)], "--tolerance", "1.5").returncode == 2


def test_only_the_last_runs_count() -> None:
    kind = "k"
    past = [("old" + "0" * 37, 3.0)] + [(f"{n:040d}", 1.0) for n in range(1, 11)]
    runs = [history.Run(c, False, "", kind, {THROUGHPUT: {"ratio": r}}) for c, r in past]
    found = history.best_recent(runs, kind, THROUGHPUT, last=10)
    assert found is not None and found[0] == 1.0
    assert [v.regressed for v in history.compare([rate(1.0)], runs, kind)] == [False]
    assert history.best_recent(runs, kind, THROUGHPUT, last=11) == (3.0, runs[0])


def test_record_appends_one_line_with_commit_date_machine_and_figures(tmp_path: Path) -> None:
    hist = tmp_path / "history.jsonl"
    report = write_report(tmp_path / "report.json", [rate(0.9), latency(520), lost(0)])
    for _ in range(2):
        r = run("history.py", "record", str(report), "--history", str(hist))
        assert r.returncode == 0, r.stdout + r.stderr
    text = hist.read_text().splitlines()
    assert len(text) == 2
    d = json.loads(text[1])
    assert len(d["commit"]) == 40 and isinstance(d["dirty"], bool)
    assert dt.datetime.strptime(d["date"], "%Y-%m-%dT%H:%M:%SZ")
    assert set(d["machine"]) == {"cpu_model", "cores", "fs_type", "kernel", "python"}
    assert len(d["load"]) == 3
    assert d["kind"] == history.machine_kind(history.machine_facts())
    f = d["figures"][THROUGHPUT]
    assert (f["value"], f["baseline"], f["unit"]) == (900.0, 1000.0, "intents/s")
    assert f["ratio"] == pytest.approx(0.9) and f["higher_is_better"] is True
    assert d["figures"][LOST]["ratio"] == "inf"


def test_report_prints_the_change_against_history(tmp_path: Path) -> None:
    hist = tmp_path / "history.jsonl"
    write_history(hist, [("b" * 40, [rate(2.0)])])
    report = write_report(tmp_path / "report.json", [rate(1.4), latency(500)])
    r = run("report.py", str(report), "--history", str(hist))
    assert r.returncode == 0, r.stdout + r.stderr
    head, _, *body = r.stdout.splitlines()
    assert head.split("|")[-1].strip() == "vs history"
    assert body[0].split("|")[-1].strip() == "-30% vs bbbbbbbbbb"
    assert body[1].split("|")[-1].strip() == "new"


def test_figures_reads_the_report_with_ratios_the_right_way_round(tmp_path: Path) -> None:
    report = json.loads(write_report(tmp_path / "r.json", [rate(0.5), latency(1100)]).read_text())
    got = figures(report)
    assert [f.name for f in got] == [THROUGHPUT, LATENCY]
    assert [f.ratio for f in got] == [pytest.approx(0.5), pytest.approx(0.5)]


def test_a_line_that_is_not_a_run_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = tmp_path / "history.jsonl"
    write_history(hist, [("a" * 40, [rate(1.0)])])
    with open(hist, "a") as f:
        f.write("<<<<<<< HEAD\n{\"commit\": 1}\n")
    assert len(history.load(hist)) == 1
    assert "history.jsonl:2: not a run" in capsys.readouterr().err


def test_machine_facts() -> None:
    facts = history.machine_facts()
    assert facts["cores"] == os.cpu_count()
    assert facts["fs_type"] != "unknown" and facts["cpu_model"]
    assert history.fs_type(Path("/proc/self")) == "proc"
    assert history.machine_kind(facts) != history.machine_kind(OTHER_FACTS)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    import matplotlib.image
    from PIL import Image

    import plot_history

    hist = tmp_path / "history.jsonl"
    write_history(hist, [(f"{n:x}" * 40, [rate(1.0 - n / 20), latency(500 + 10 * n), lost(n // 3)])
                         for n in range(1, 6)])
    write_history(hist, [("f" * 40, [rate(3.0)])], OTHER_FACTS)
    out = plot_history.plot(history.load(hist), tmp_path / "bench-history.png")
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 500 and im.size[1] > 300
    assert matplotlib.image.imread(str(out)).ndim == 3


def test_plot_of_an_empty_history_is_a_png(tmp_path: Path) -> None:
    r = run("plot_history.py", "--history", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_SIGNATURE
