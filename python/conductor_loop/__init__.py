"""conductor-loop: watch a handoff directory for intents, run porch for each, file the result."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use (every command starts faster)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conductor-loop")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"
