"""A fleet on loopback for tests and the scaling benchmark: real ``conductor-loop worker`` processes, a porch
that sleeps and logs every run, and the intents and checks the fleet tests share.

The porch (:func:`sleepy_porch`) appends one JSON line per run to its log (intent, worker, sha256, start
and end), so a test counts porch's own runs, and writes ``<out>/<namespace>/<target>-scaling/Kptfile``
holding the intent's ``replicas`` (the package a test compares with its target's latest intent).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from workerproc import Worker

PORCH = '''#!{python}
import json, os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
t0 = time.time()
time.sleep({sleep})
doc = json.load(open(args["-intent"]))
pkg = os.path.join(args["-out"], doc["namespace"], doc["target"] + "-scaling")
os.makedirs(pkg, exist_ok=True)
with open(os.path.join(pkg, "Kptfile"), "w") as fh:
    fh.write("replicas: %d\\n" % doc["replicas"])
line = json.dumps({{"intent": os.path.basename(args["-intent"]), "worker": os.environ.get("CONDUCTOR_WORKER"),
                   "sha256": os.environ.get("CONDUCTOR_INTENT_SHA256"), "start": t0, "end": time.time()}})
with open({log!r}, "a") as fh:
    fh.write(line + "\\n")
'''


def sleepy_porch(directory: Path, sleep: float) -> tuple[Path, Path]:
    """A porch script that sleeps ``sleep`` seconds per run; returns (its path, its run log)."""
    directory.mkdir(parents=True, exist_ok=True)
    porch, log = directory / "porch.py", directory / "porch-runs.jsonl"
    porch.write_text(PORCH.format(python=sys.executable, sleep=sleep, log=str(log)))
    porch.chmod(0o755)
    return porch, log


def porch_runs(log: Path) -> list[dict[str, Any]]:
    """Every run porch logged."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def start_workers(url: str, porch: Path, log_dir: Path, n: int, *, slots: int = 1) -> list[Worker]:
    """``n`` workers ``w0`` … ``w<n-1>`` of the ``default`` fleet, running ``porch``."""
    return [Worker(log_dir, url, f"w{i}", "--porch", str(porch), "--slots", str(slots), "--timeout", "30s",
                   fleet="default") for i in range(n)]


def write_waves(handoff: Path, targets: int, waves: int, gap: float = 0.05) -> dict[str, int]:
    """``targets x waves`` intents, wave by wave (each target once a wave, written ``gap`` apart, so a later
    wave is a newer intent); returns each target's latest replicas."""
    latest: dict[str, int] = {}
    for w in range(waves):
        for t in range(targets):
            name = f"intent-w{w}-t{t:03d}.json"
            doc = {"intent_type": "scaling", "target": f"t{t:03d}", "namespace": "default", "replicas": w * 10 + 1}
            tmp = handoff / f".{name}.tmp"
            tmp.write_text(json.dumps(doc))
            os.rename(tmp, handoff / name)
            latest[f"t{t:03d}"] = w * 10 + 1
        time.sleep(gap)
    return latest


def filed_count(handoff: Path) -> int:
    """Intents in processed/ and failed/."""
    return sum(1 for d in ("processed", "failed") for e in os.scandir(handoff / d) if e.name.endswith(".json"))


def scrape(get: Any) -> dict[str, float]:
    """The ``conductor_fleet_*`` samples of a real scrape (``get``: ``LoopProcess.get``), keyed
    ``name`` or ``name{label=value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = get("/metrics")
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("conductor_fleet_"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
                if "le" not in s.labels:
                    out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out
