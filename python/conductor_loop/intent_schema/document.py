"""The built-in schema's document, ``schema/intent.schema.json``, read once per process.

:mod:`.builtin` takes its field lists from it and :mod:`.compiled` compiles it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Shipped beside the package's modules (a wheel is never zipped); read by path, not through
#: ``importlib.resources``, whose import alone cost every start (and the forkserver's) about 17 ms.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "intent.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
