"""The file store: uploaded files kept outside the database rows, sealed with the personal-data key.

A file is stored under a key the platform chooses (never a name a user gave), in a directory tree under
``files_dir``. Workers of a distributed deployment mount the same directory (a network file system or an
object-store mount); swapping in an object-store client means implementing ``put``/``get``/``delete``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from carebridge.core import crypto


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError("bad storage key")
        return self.root / key[:2] / key

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(crypto.cipher().encrypt_bytes(data))
        os.replace(tmp, path)  # a reader never sees half a file

    def _get(self, key: str) -> bytes:
        return crypto.cipher().decrypt_bytes(self._path(key).read_bytes())

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(lambda: self._path(key).unlink(missing_ok=True))
