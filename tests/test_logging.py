"""Personal data never reaches the logs."""

from __future__ import annotations

from carebridge.core.logging import redact


def test_redact_masks_personal_keys_and_values_anywhere() -> None:
    event = {
        "event": "booking for 11010519850615123X phone 13912345678",
        "phone": "13912345678",
        "id_number": "11010519850615123X",
        "path": "/api/v1/patients",
        "name": "张三",
    }
    out = redact(None, "info", dict(event))
    text = repr(out)
    assert "11010519850615123X" not in text and "13912345678" not in text and "张三" not in text
    assert out["path"] == "/api/v1/patients"


def test_a_worker_does_not_load_the_pretty_printers() -> None:
    """structlog and httpx would import rich and pygments (installed for the CEL package's command line): about
    3.5 MB per worker that nothing uses (carebridge/__init__.py). A worker's app, and an exception logged in the
    plain console format, go without them; ``import rich`` still works afterwards."""
    import subprocess
    import sys

    script = """
import sys
from carebridge.app import create_app
from carebridge.config import Settings
from carebridge.core import logging as cb_logging
create_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))
cb_logging.configure("INFO", False)
import structlog
try:
    raise ValueError("shown as a plain traceback")
except ValueError:
    structlog.get_logger("t").exception("failed")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "pygments"))
print("LOADED", loaded)
import rich.console
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "LOADED []" in out
    assert "ValueError: shown as a plain traceback" in out
