"""The built-in porch: generate a kpt package for a validated intent (README, "What it does"; docs/executors.md).

``<out>/<namespace>/<target>-scaling/`` holds

- ``Kptfile`` (``kpt.dev/v1``; in structured mode with an ``apply-replacements`` mutator pipeline),
- ``scaling-patch.yaml`` (an ``apps/v1`` Deployment patch with ``spec.replicas``),
- in structured mode also ``apply-replacements.yaml`` (the function config the pipeline points at),
  ``scaling-values.yaml`` (the local-config ConfigMap it reads from) and ``README.md``.

The built-in porch makes packages for scaling intents only (:attr:`Intent.scaling`); any other intent,
one without a whole ``replicas``, or one whose ``namespace``/``target`` is missing or not a DNS-1123
label is refused with :class:`NotBuildable` (the intent fails with that reason). So the directory name
comes only from DNS-1123 labels and always lies inside ``out``. A package is desired state: a newer intent
for the same target replaces the whole directory atomically. The Rust core writes it in one call with
the GIL released (``_core.write_package``, ``rust/package.rs``): it is built in a hidden temporary directory
``.<name>.tmp-<12 hex>`` beside the final one and then renamed into place (``rename``), or swapped with the existing one
(``renameat2(RENAME_EXCHANGE)``) and the old one removed, so a reader never sees a half-written or mixed
package, even with several processes generating the same target at once.

The YAML is written from string templates (all values are validated names and integers; strings are
emitted as double-quoted scalars, so names such as ``"true"`` or ``"123"`` stay strings).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from conductor_loop import _core
from conductor_loop.clock import rfc3339
from conductor_loop.k8snames import LABEL_RULE, is_dns1123_label
from conductor_loop.validate import Intent, ValidationError, read_intent

SCALING_ONLY = "the built-in porch generates packages for scaling intents only; use an external porch"

APPLY_REPLACEMENTS_IMAGE = "gcr.io/kpt-fn/apply-replacements:v0.1.1"
"""The kpt function image used by the structured-mode pipeline."""

STANDALONE_MAX_SIZE = 10 * 1024 * 1024
"""Largest intent file the stand-alone command accepts (the loop's ``--max-file-size`` default)."""

_USAGE = "usage: conductor-loop porch -intent FILE -out DIR [-structured]"
_HELP = """The built-in porch: validate one intent and write its kpt package to
DIR/<namespace>/<target>-scaling/ (atomically replacing an older one).
-structured adds the apply-replacements pipeline and a README.md.

Exit codes: 0 written, 1 invalid intent or write error, 2 usage error.

Example:
  conductor-loop porch -intent handoff/intent-a.json -out ./out -structured"""


class NotBuildable(ValueError):
    """The built-in porch cannot make a package for this (valid) intent; the message says why."""


@dataclass(frozen=True, slots=True)
class _Scaling:
    """What a scaling package is made of."""

    intent_type: str
    target: str
    namespace: str
    replicas: int


def scaling_request(intent: Intent) -> _Scaling:
    """The package inputs of ``intent``, or :class:`NotBuildable` saying what is missing."""
    if not intent.scaling:
        raise NotBuildable(SCALING_ONLY)
    if intent.replicas is None:
        raise NotBuildable("the built-in porch needs replicas as a whole number")
    namespace, target = intent.namespace, intent.target
    if namespace is None or target is None:
        missing = [key for key, value in (("namespace", namespace), ("target", target)) if value is None]
        raise NotBuildable(f"the built-in porch needs {' and '.join(missing)} to place the package")
    for key, value in (("namespace", namespace), ("target", target)):
        if not is_dns1123_label(value):
            raise NotBuildable(f"the built-in porch needs {key} to be a DNS-1123 label ({LABEL_RULE}), not {value!r}")
    return _Scaling(intent.intent_type or "scaling", target, namespace, intent.replicas)


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML).

    Printable ASCII without a quote or a backslash (every validated name) is what ``json.dumps`` would
    give, quoted as it is; anything else goes through ``json.dumps``.
    """
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


def _kptfile(intent: _Scaling, name: str, structured: bool) -> str:
    description = (
        f"{intent.intent_type} intent: deployment {intent.target} in namespace {intent.namespace}, "
        f"replicas {intent.replicas}"
    )
    text = (
        "apiVersion: kpt.dev/v1\n"
        "kind: Kptfile\n"
        "metadata:\n"
        f"  name: {_q(name)}\n"
        "  annotations:\n"
        '    config.kubernetes.io/local-config: "true"\n'
        "info:\n"
        f"  description: {_q(description)}\n"
    )
    if structured:
        text += (
            "pipeline:\n"
            "  mutators:\n"
            f"    - image: {APPLY_REPLACEMENTS_IMAGE}\n"
            "      configPath: apply-replacements.yaml\n"
        )
    return text


def _patch(intent: _Scaling, generated_at: str) -> str:
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        f"  name: {_q(intent.target)}\n"
        f"  namespace: {_q(intent.namespace)}\n"
        "  annotations:\n"
        f"    nephoran.io/intent-type: {_q(intent.intent_type)}\n"
        f"    nephoran.io/generated-at: {_q(generated_at)}\n"
        '    config.kubernetes.io/merge-policy: "replace"\n'
        "spec:\n"
        f"  replicas: {int(intent.replicas)}\n"
    )


def _values(intent: _Scaling, name: str) -> str:
    return (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {_q(name + '-values')}\n"
        "  annotations:\n"
        '    config.kubernetes.io/local-config: "true"\n'
        "data:\n"
        f"  target: {_q(intent.target)}\n"
        f"  namespace: {_q(intent.namespace)}\n"
        f"  replicas: {_q(str(int(intent.replicas)))}\n"
    )


def _replacements(intent: _Scaling, name: str) -> str:
    return (
        "apiVersion: fn.kpt.dev/v1alpha1\n"
        "kind: ApplyReplacements\n"
        "metadata:\n"
        f"  name: {_q(name + '-replacements')}\n"
        "  annotations:\n"
        '    config.kubernetes.io/local-config: "true"\n'
        "replacements:\n"
        "  - source:\n"
        "      kind: ConfigMap\n"
        f"      name: {_q(name + '-values')}\n"
        "      fieldPath: data.namespace\n"
        "    targets:\n"
        "      - select:\n"
        "          kind: Deployment\n"
        f"          name: {_q(intent.target)}\n"
        "        fieldPaths:\n"
        "          - metadata.namespace\n"
    )


def _readme(intent: _Scaling, name: str, generated_at: str) -> str:
    return (
        f"# {name}\n\n"
        f"Generated by conductor-loop's built-in porch at {generated_at} from a "
        f"`{intent.intent_type}` intent.\n\n"
        f"- Deployment `{intent.target}` in namespace `{intent.namespace}`\n"
        f"- replicas: {int(intent.replicas)}\n\n"
        "Files:\n\n"
        "- `Kptfile`: the package, with an `apply-replacements` mutator pipeline\n"
        "- `scaling-patch.yaml`: the Deployment patch (merge policy `replace`)\n"
        "- `scaling-values.yaml`: local-config values read by the pipeline\n"
        "- `apply-replacements.yaml`: the function configuration\n\n"
        "Render with `kpt fn render`.\n"
    )


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


_STALE_TEMP = re.compile(r"^\..+-scaling\.tmp-[0-9a-f]+(\.old)?$")


def remove_stale_temps(out_dir: str, older_than: float = 600.0) -> int:
    """Remove temp package directories that a killed generator left in ``out_dir/<ns>/``.

    Only hidden ``.<target>-scaling.tmp-<hex>`` names older than ``older_than`` seconds are
    touched (never a final package); returns how many were removed.
    """
    removed = 0
    cutoff = time.time() - older_than
    try:
        namespaces = [e.path for e in os.scandir(out_dir) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for ns in namespaces:
        with contextlib.suppress(FileNotFoundError), os.scandir(ns) as it:
            stale = [
                e.path
                for e in it
                if _STALE_TEMP.match(e.name)
                and e.is_dir(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_mtime < cutoff
            ]
        for path in stale:
            _remove(path)
            removed += 1
    return removed


def package_dir(intent: Intent, out_dir: str) -> str:
    """Where :func:`generate_package` puts the package for ``intent``; :class:`NotBuildable` if nowhere."""
    req = scaling_request(intent)
    return os.path.join(out_dir, req.namespace, f"{req.target}-scaling")


def generate_package(
    intent: Intent,
    out_dir: str,
    *,
    structured: bool,
    now: datetime | None = None,
    durable: bool = False,
) -> str:
    """Write the kpt package for ``intent`` under ``out_dir`` atomically and return its directory.

    ``durable`` fsyncs the files and directories (the stand-alone command); the loop passes ``False``
    and makes each batch durable with one ``syncfs``. Raises :class:`NotBuildable` for an intent the
    built-in porch does not make packages for, ``OSError`` when the output cannot be written; nothing is
    left half-visible under the final name.
    """
    req = scaling_request(intent)
    name = f"{req.target}-scaling"
    moment = now if now is not None else datetime.now(timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    generated_at = rfc3339(calendar.timegm(moment.timetuple()), digits=0)

    files = [
        ("Kptfile", _kptfile(req, name, structured).encode()),
        ("scaling-patch.yaml", _patch(req, generated_at).encode()),
    ]
    if structured:
        files += [
            ("scaling-values.yaml", _values(req, name).encode()),
            ("apply-replacements.yaml", _replacements(req, name).encode()),
            ("README.md", _readme(req, name, generated_at).encode()),
        ]
    return _core.write_package(os.path.join(out_dir, req.namespace), name, files, durable)


def install_dir(tmp: str, final: str) -> None:
    """Put the complete directory (or file) ``tmp`` at ``final`` by rename, never half-visible (fleet mode's
    ingest installs the packages it receives this way too): a plain rename, or a swap with what is there
    (``renameat2(RENAME_EXCHANGE)``, in the Rust core) and its removal."""
    _core.install_tree(tmp, final)


def _parse_args(argv: list[str]) -> tuple[str, str, bool] | str:
    intent_path: str | None = None
    out_dir: str | None = None
    structured = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition("=")
        flag = key.lstrip("-")
        if not arg.startswith("-") or key.startswith("---") or flag == "":
            return f"unexpected argument: {arg!r}"
        if flag in ("intent", "out"):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                return f"option -{flag} needs a value"
            if flag == "intent":
                intent_path = value
            else:
                out_dir = value
        elif flag == "structured" and (not eq or inline.lower() in ("true", "1", "false", "0")):
            structured = not eq or inline.lower() in ("true", "1")
        elif flag in ("h", "help") and not eq:
            return "help"
        else:
            return f"unknown option: {arg!r}"
        i += 1
    if not intent_path:
        return "missing -intent FILE"
    if not out_dir:
        return "missing -out DIR"
    return intent_path, out_dir, structured


def main(argv: list[str] | None = None) -> int:
    """The stand-alone ``porch -intent FILE -out DIR [-structured]``; returns the exit code.

    Prints the package directory and returns 0; an invalid intent or an unwritable output gives a
    message on stderr and 1; a usage error gives 2.
    """
    parsed = _parse_args(sys.argv[1:] if argv is None else argv)
    if parsed == "help":
        print(_USAGE + "\n\n" + _HELP)
        return 0
    if isinstance(parsed, str):
        print(f"porch: {parsed}\n{_USAGE}", file=sys.stderr)
        return 2
    intent_path, out_dir, structured = parsed
    try:
        _, _, _, intent = read_intent(intent_path, STANDALONE_MAX_SIZE)
    except ValidationError as exc:
        print(f"porch: invalid intent {intent_path}: {exc.reason}", file=sys.stderr)
        return 1
    try:
        path = generate_package(intent, out_dir, structured=structured, durable=True)
    except NotBuildable as exc:
        print(f"porch: {intent_path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"porch: cannot write the package under {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
