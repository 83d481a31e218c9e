"""CareBridge: an open internet-hospital platform."""

__version__ = "0.1.0"


def _import_without_pretty_printers() -> None:
    """structlog (for its console renderer's coloured tracebacks) and httpx (for its command line) import rich and
    pygments whenever they are installed, and they are (the CEL package's command line requires them): about 3.5 MB
    in every worker, which CareBridge never uses (its logs are JSON or plain text; docs/decisions.md). Both
    libraries carry on without them when the import fails, so they are imported first with the two hidden. A later
    ``import rich`` (a test tool, the CEL command line) works as usual."""
    import sys

    hidden = [name for name in ("rich", "pygments") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import rich" raises ImportError
    try:
        import httpx  # noqa: F401
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


_import_without_pretty_printers()
