"""conductor-loop: watch a handoff directory for intents, run porch for each, file the result."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("conductor-loop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
