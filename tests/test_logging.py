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
