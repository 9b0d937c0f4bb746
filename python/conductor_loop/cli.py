"""The ``conductor-loop`` command line (click).

Exit codes (SPEC §4): 0 all good; 8 ``--once`` finished and some intents of this run failed;
2 usage or configuration error; 1 any other fatal error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from conductor_loop import __version__
from conductor_loop.goflags import GO_FLAG_OPTION, GoFlagError, label_sources, translate

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_FAILURES = 8

RUN_EXAMPLE = """
\b
Examples:
  conductor-loop run --handoff /var/lib/conductor/handoff --out /var/lib/conductor/out
  conductor-loop run --once --porch /usr/local/bin/porch --mode structured
  conductor-loop run -handoff ./handoff -porch builtin -once        # Go loop spellings
"""


def _fail(code: int, message: str) -> None:
    click.echo(f"conductor-loop: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="conductor-loop")
def cli() -> None:
    """Watch a handoff directory for intent files, run porch for each, and file the result.

    \b
    Example:
      conductor-loop run --once --handoff ./handoff --out ./out
    """


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--handoff", metavar="DIR", help="Handoff directory to watch (created if missing)."),
        click.option("--out", metavar="DIR", help="Where porch writes packages."),
        click.option("--porch", metavar="PATH|builtin", help="Porch executable, or 'builtin' (default)."),
        click.option("--mode", type=click.Choice(["direct", "structured"]), help="Porch mode."),
        click.option("--once", is_flag=True, default=None, help="Drain the backlog, then exit."),
        click.option("--debounce", metavar="DURATION", help="Quiet period before a file counts as settled."),
        click.option("--workers", metavar="N", help="Fixed number of workers (sets min and max)."),
        click.option("--min-workers", metavar="N", help="Worker floor (default 1)."),
        click.option("--max-workers", metavar="N", help="Worker ceiling (default: CPU count)."),
        click.option("--timeout", metavar="DURATION", help="Porch timeout (default 30s)."),
        click.option("--retries", metavar="N", help="Retries of environment failures (default 2)."),
        click.option("--pattern", "patterns", metavar="GLOB", multiple=True, help="Intent file pattern; repeatable."),
        click.option("--max-file-size", metavar="SIZE", help="Largest accepted intent (default 10MiB)."),
        click.option("--intent-schema", metavar="builtin|go-compat|PATH", help="Intent rules (default builtin)."),
        click.option("--cleanup-after", metavar="DURATION", help="Remove filed intents older than this (0: never)."),
        click.option("--metrics-addr", metavar="HOST:PORT", help="Serve /metrics and health endpoints here."),
        click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format."),
        click.option("--log-level", metavar="LEVEL", help="debug, info, warning or error."),
        click.option("--config", "config", metavar="FILE", help="TOML configuration file."),
        click.option("--dry-run", is_flag=True, default=None, help="List what would run; touch nothing."),
        click.option("--watch", type=click.Choice(["auto", "inotify", "poll"]),
                     help="How to see new files: inotify, poll (network filesystems) or auto (by filesystem)."),
        click.option("--poll-interval", metavar="DURATION", help="How often poll mode lists the handoff (1s)."),
        click.option(GO_FLAG_OPTION, "go_flags", multiple=True, hidden=True),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _given(params: dict[str, Any]) -> dict[str, Any]:
    """Only the options actually given on the command line."""
    given = {k: v for k, v in params.items() if v is not None and v != () and k != "go_flags"}
    if "patterns" in given:
        given["patterns"] = list(given["patterns"])
    return given


def _resolve(params: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    from conductor_loop.config import ConfigError, resolve

    try:
        cfg, sources = resolve(_given(params), os.environ, params.get("config"))
    except ConfigError as exc:
        _fail(EXIT_USAGE, str(exc))
        raise AssertionError("unreachable") from exc
    label_sources(sources, params.get("go_flags") or ())
    return cfg, sources


@cli.command(epilog=RUN_EXAMPLE)
@_run_options
def run(**params: Any) -> None:
    """Run the loop: watch (default) or drain the backlog once (--once)."""
    from conductor_loop.executor import load_executor, resolve_porch
    from conductor_loop.logs import setup_logging

    cfg, _sources = _resolve(params)
    try:
        cfg.porch = resolve_porch(cfg.porch)
        load_executor(cfg.porch, cfg.mode)  # a plug-in that cannot load fails here, not in every worker
    except Exception as exc:  # noqa: BLE001 - any failure to build the executor is a configuration error
        _fail(EXIT_USAGE, f"--porch {cfg.porch!r}: {exc}" if "porch" not in str(exc) else str(exc))
    try:
        setup_logging(cfg.log_format, cfg.log_level)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))
    if cfg.dry_run:
        sys.exit(_dry_run(cfg))
    sys.exit(_run_loop(cfg, params))


def _run_loop(cfg: Any, params: dict[str, Any]) -> int:
    from conductor_loop.executor import resolve_porch
    from conductor_loop.metrics import Health, Metrics, MetricsServer
    from conductor_loop.supervisor import FatalError, LockHeld, Supervisor

    metrics, health = Metrics(), Health(live_timeout=max(30.0, cfg.timeout + 15.0))
    server = None
    if cfg.metrics_addr:
        try:
            server = MetricsServer(cfg.metrics_addr, metrics, health)
            host, port = server.start()
        except (OSError, ValueError) as exc:
            _fail(EXIT_USAGE, f"--metrics-addr {cfg.metrics_addr}: {exc}")
        click.echo(f"conductor-loop: serving /metrics on http://{host}:{port}", err=True)

    progress = _Progress(enabled=cfg.once and sys.stderr.isatty())

    def reload() -> Any:
        from conductor_loop.config import resolve

        new, _ = resolve(_given(params), os.environ, params.get("config"))  # raises ConfigError
        new.porch = resolve_porch(new.porch)
        return new

    sup = Supervisor(cfg, metrics=metrics, health=health, reload=reload, on_outcome=progress.update)
    try:
        with progress:
            summary = sup.run()
    except LockHeld as exc:
        _fail(EXIT_USAGE, str(exc))
        return EXIT_USAGE
    except FatalError as exc:
        _fail(EXIT_FATAL, str(exc))
        return EXIT_FATAL
    finally:
        if server is not None:
            server.stop()
    if cfg.once:
        click.echo(summary.line())
        return EXIT_FAILURES if summary.failed else EXIT_OK
    return EXIT_OK


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("intents"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("intents", total=None)
        return self

    def update(self, summary: Any, total: int) -> None:
        """Called by the supervisor after each filed intent."""
        if self._bar is not None:
            self._bar.update(self._task, completed=summary.total, total=max(total, summary.total))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _dry_run(cfg: Any) -> int:
    """List what a run would do, touching nothing."""
    from conductor_loop.names import PatternMatcher
    from conductor_loop.validate import validate_path

    handoff = os.path.abspath(cfg.handoff)
    matcher = PatternMatcher(cfg.patterns)
    try:
        names = sorted(n for n in os.listdir(handoff) if matcher.is_intent(n))
    except FileNotFoundError:
        names = []
    out = os.path.abspath(cfg.out)
    for name in names:
        path = os.path.join(handoff, name)
        problems = validate_path(path, cfg.max_file_size, cfg.intent_schema)
        if problems:
            click.echo(f"would fail  {name}: {'; '.join(problems)}")
            continue
        argv = [cfg.porch, "-intent", path, "-out", out] + (["-structured"] if cfg.mode == "structured" else [])
        click.echo(f"would run   {name}: {' '.join(argv)}")
    click.echo(f"dry run: {len(names)} intent(s) in {handoff}; nothing was changed")
    return EXIT_OK


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--max-file-size", default="10MiB", show_default=True, metavar="SIZE")
@click.option("--intent-schema", default="builtin", show_default=True, metavar="builtin|go-compat|PATH")
def validate(files: tuple[str, ...], max_file_size: str, intent_schema: str) -> None:
    """Check intent files exactly as the loop does; exit 1 if any is invalid.

    \b
    Example:
      conductor-loop validate handoff/intent-*.json
      conductor-loop validate --intent-schema go-compat handoff/intent-*.json
    """
    from conductor_loop.config import parse_size
    from conductor_loop.intent_schema import load_schema
    from conductor_loop.validate import validate_path

    try:
        limit = parse_size(max_file_size)
        schema = load_schema(intent_schema)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))
        return
    bad = 0
    for f in files:
        problems = validate_path(f, limit, schema)
        for p in problems:
            click.echo(f"{f}: {p}")
        if problems:
            bad += 1
        else:
            click.echo(f"{f}: ok")
    sys.exit(1 if bad else 0)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def porch(ctx: click.Context) -> None:
    """The built-in porch stand-alone: porch -intent FILE -out DIR [-structured].

    \b
    Example:
      conductor-loop porch -intent handoff/intent-a.json -out ./out -structured
    """
    from conductor_loop.porch import main as porch_main

    sys.exit(porch_main(list(ctx.args)))


def _register_operator_commands() -> None:
    from conductor_loop.commands import register

    register(cli)


_register_operator_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        args = ["run", *args]  # the Go loop had no sub-commands: `conductor-loop -handoff DIR -once`
    cli.main(args=_go_spellings(args), prog_name="conductor-loop")


def _go_spellings(args: list[str]) -> list[str]:
    """Translate the Go loop's flags for ``run`` and ``config show`` (README "Migrating from the Go loop")."""
    if args[:1] == ["run"]:
        n, command = 1, cli.commands["run"]
    elif args[:2] == ["config", "show"]:
        group = cli.commands["config"]
        assert isinstance(group, click.Group)
        n, command = 2, group.commands["show"]
    else:
        return args
    value_options = {
        o for p in command.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts if o[:2] == "--"
    }
    try:
        done = translate(args[n:], value_options)
    except GoFlagError as exc:
        _fail(EXIT_USAGE, str(exc))
        raise AssertionError("unreachable") from exc
    for warning in done.warnings:
        click.echo(f"conductor-loop: warning: {warning}", err=True)
    return args[:n] + done.argv
