"""Static files of the web pages: served from the package, versioned by content hash for long caching."""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path

import fastapi_offline
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
# Swagger UI (the portal's API reference), from the installed fastapi-offline package; its version keys the cache
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_VERSION = metadata.version("fastapi-offline")

# A URL carrying ``?v=<hash>`` never changes content, so browsers may keep it for a year; a bare URL is
# revalidated (ETag) on every use.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_versions: dict[str, tuple[float, str]] = {}


def static_url(name: str) -> str:
    """``/static/<name>?v=<first 12 hex of its sha256>``; the hash is recomputed when the file changes."""
    path = STATIC_DIR / name
    mtime = path.stat().st_mtime
    cached = _versions.get(name)
    if cached is None or cached[0] != mtime:
        cached = (mtime, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        _versions[name] = cached
    return f"/static/{name}?v={cached[1]}"


class CachedStaticFiles(StaticFiles):
    """StaticFiles with Cache-Control and nosniff on every answer (304s included)."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        versioned = b"v=" in scope.get("query_string", b"")
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = IMMUTABLE if versioned else REVALIDATE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
