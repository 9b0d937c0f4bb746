"""The module guide (docs/ARCHITECTURE.md): every module imports, no import cycle, every log event documented.

Imports are read from the source (``import`` statements, top-level and inside functions; ``if
TYPE_CHECKING`` blocks excepted), so a cycle hidden behind a lazy import is found too.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conductor_loop.logs import EVENTS
from conductor_loop.records import Outcome
from intent_fixtures import flat
from loopproc import free_port

PKG = Path(__file__).resolve().parent.parent / "python" / "conductor_loop"


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports (a ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES and m != name}


def test_every_module_imports() -> None:
    for name in MODULES:
        importlib.import_module(name)


def test_no_import_cycle() -> None:
    graph = {name: imports_of(name, path) - {"conductor_loop"} for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_loop_modules_do_not_reach_back() -> None:
    """Recorder and pool never import the worker; the operator commands never import the loop."""
    for low in ("conductor_loop.recorder", "conductor_loop.pool"):
        assert "conductor_loop.worker" not in imports_of(low, MODULES[low]), low
    for cmd in ("conductor_loop.cli.status", "conductor_loop.cli.retry", "conductor_loop.cli.statecmd"):
        deps = imports_of(cmd, MODULES[cmd])
        assert not deps & {"conductor_loop.supervisor", "conductor_loop.pool", "conductor_loop.recorder"}, cmd


def emitted_events() -> set[str]:
    """Every event name the code passes to ``log_event``, ``Telemetry.note`` or ``Note``."""
    names: set[str] = set()
    workers: set[str] = set()
    dynamic: list[str] = []

    def const(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return const(node.body) + const(node.orelse)
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            dynamic.append(str(node.values[0].value))
        return []

    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("log_event", "note", "Note"):
                names.update(const(node.args[0]))
            elif func == "WorkerEvent":
                workers.update(const(node.args[0]))
    for prefix in dynamic:
        if prefix == "intent.":
            names.update(f"intent.{o.value}" for o in Outcome if o.final)
        elif prefix == "worker.":
            names.update(f"worker.{w}" for w in workers if w != "start")
        else:
            raise AssertionError(f"an event name built at run time the test cannot expand: {prefix}...")
    return names


def test_every_emitted_event_is_documented_and_every_documented_one_emitted() -> None:
    emitted = emitted_events()
    assert emitted - set(EVENTS) == set(), "emitted but not in logs.EVENTS"
    assert set(EVENTS) - emitted == set(), "in logs.EVENTS but never emitted"
    guide = (PKG.parent.parent / "docs" / "operations.md").read_text()
    section = guide.split("### Events", 1)[1].split("\n## ", 1)[0]
    table = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert table == set(EVENTS), "docs/operations.md Events table differs from logs.EVENTS"


def test_module_and_function_sizes_follow_the_guide() -> None:
    """About 400 lines a module at most, 40 lines of code a function (docstrings not counted)."""
    for name, path in MODULES.items():
        text = path.read_text()
        assert text.count("\n") <= 450, f"{name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1:
                body = body[1:]
            lines = (body[-1].end_lineno or 0) - body[0].lineno + 1
            assert lines <= 40, f"{name}.{node.name}: {lines} lines"


def test_a_worker_loads_no_command_line() -> None:
    """What the forkserver preloads and every worker re-runs (the console script's entry module) does not
    import click or the CLI: workers start with what they run (docs/ARCHITECTURE.md, "What was cut")."""
    import subprocess
    import sys

    import tomllib

    from conductor_loop.warmup import WORKER_PRELOAD

    scripts = tomllib.loads((PKG.parent.parent / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, _func = scripts["conductor-loop"].partition(":")
    loaded = [module, *WORKER_PRELOAD]
    code = f"import sys; import {', '.join(loaded)}; print(sorted(m for m in sys.modules if m == 'click' or "
    code += "m.startswith(('click.', 'conductor_loop.cli'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("served", [False, True])
def test_the_loop_process_imports_only_what_it_uses(tmp_path: Path, served: bool) -> None:
    """A real once-run: the loop's own process never checks an intent, so it never imports fastjsonschema (the
    workers' forkserver compiles the schema); without --metrics-addr nothing could read a count, so neither
    prometheus-client nor the HTTP server is imported either (``meters.Unserved``). With an endpoint both are
    (the scrape itself: the ``LoopProcess`` tests). docs/ARCHITECTURE.md, "What was cut"."""
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    handoff.mkdir()
    (handoff / "intent-a.json").write_text(json.dumps(flat(timestamp=None)))
    argv = ["run", "--once", "--handoff", str(handoff), "--out", str(out)]
    if served:
        argv += ["--metrics-addr", f"127.0.0.1:{free_port()}"]
    code = (
        "import atexit, sys\n"
        "def seen():\n"
        "    names = sorted(m for m in sys.modules if m in ('prometheus_client', 'http.server', 'fastjsonschema'))\n"
        "    print('imported', names, file=sys.stderr)\n"
        "atexit.register(seen)\n"
        "from conductor_loop.entry import main\n"
        f"main({argv!r})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "processed 1, skipped 0, failed 0" in r.stdout, r.stdout
    expected = ["http.server", "prometheus_client"] if served else []
    assert f"imported {expected!r}" in r.stderr, r.stderr
    assert (handoff / "processed" / "intent-a.json").exists()
