"""The built-in schema compiled by ``fastjsonschema``: importing this module compiles it (about 12 ms, and the
library's import as much again).

:mod:`.builtin` imports it at its first check. The loop's own process never checks an intent, so it never
pays for it; the workers' forkserver preloads it (``conductor_loop.warmup.WORKER_PRELOAD``), so every
worker is forked with it compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

from conductor_loop.intent_schema.document import SCHEMA

VALIDATE: Callable[[Any], Any] = fastjsonschema.compile(SCHEMA, use_default=False)  # data stays as parsed
INVALID = fastjsonschema.JsonSchemaValueException
