"""Personal data at rest: AES-GCM with versioned keys, and HMAC blind indexes for exact lookup.

A ciphertext is ``v<version>.<base64(nonce || ciphertext+tag)>``; the version names the key that wrote it, so
keys can rotate: new values use the newest key, old ones stay readable until re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class PersonalDataCipher:
    def __init__(self, keys: dict[int, bytes], index_key: bytes) -> None:
        self._aead = {version: AESGCM(key) for version, key in keys.items()}
        self.current_version = max(keys)
        self._index_key = index_key

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead[self.current_version].encrypt(nonce, plaintext.encode(), None)
        return f"v{self.current_version}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str) -> str:
        head, _, body = token.partition(".")
        raw = base64.urlsafe_b64decode(body)
        return self._aead[int(head[1:])].decrypt(raw[:12], raw[12:], None).decode()

    def encrypt_bytes(self, data: bytes) -> bytes:
        """Files: ``CB1`` + key version (2 bytes) + nonce + ciphertext and tag."""
        nonce = os.urandom(12)
        head = b"CB1" + self.current_version.to_bytes(2, "big")
        return head + nonce + self._aead[self.current_version].encrypt(nonce, data, head)

    def decrypt_bytes(self, blob: bytes) -> bytes:
        head, nonce, sealed = blob[:5], blob[5:17], blob[17:]
        if head[:3] != b"CB1":
            raise ValueError("not a sealed file")
        return self._aead[int.from_bytes(head[3:5], "big")].decrypt(nonce, sealed, head)

    @staticmethod
    def key_version(token: str) -> int:
        return int(token.partition(".")[0][1:])

    def blind_index(self, kind: str, value: str) -> str:
        """A keyed hash for exact-match lookup; ``kind`` keeps phone and ID indexes unlinkable."""
        digest = hmac.new(self._index_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:48]


_cipher: PersonalDataCipher | None = None


def configure(keys: dict[int, bytes], index_key: bytes) -> PersonalDataCipher:
    global _cipher
    _cipher = PersonalDataCipher(keys, index_key)
    return _cipher


def cipher() -> PersonalDataCipher:
    if _cipher is None:
        raise RuntimeError("personal-data cipher not configured (create_app or cli does this)")
    return _cipher
