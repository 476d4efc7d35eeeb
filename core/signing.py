"""Signed, expiring result URLs: HMAC-SHA256 over method, path and expiry.

A URL is ``<base>/files/<key>?expires=<unix>&signature=<hex>``. Changing any part of it (the
path, the expiry, the method) breaks the signature; a valid signature past its expiry is gone.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from urllib.parse import quote

FILES_PREFIX = "/files/"


class Verdict(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # tampered or malformed → 403
    EXPIRED = "expired"  # genuine but too old → 410


def _mac(secret_key: str, method: str, path: str, expires: int) -> str:
    msg = f"{method.upper()}\n{path}\n{expires}".encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()


def file_path(key: str) -> str:
    return FILES_PREFIX + quote(key, safe="/")


def sign_url(secret_key: str, base_url: str, key: str, expires: int, method: str = "GET") -> str:
    path = file_path(key)
    sig = _mac(secret_key, method, path, expires)
    return f"{base_url.rstrip('/')}{path}?expires={expires}&signature={sig}"


def verify(secret_key: str, method: str, path: str, expires: str | None, signature: str | None,
           now: float | None = None) -> Verdict:
    # ASCII only: str.isdigit() accepts "²" (which int() refuses) and compare_digest refuses
    # non-ASCII text; anything else is a malformed link, not a server error.
    if (not expires or not signature or not expires.isascii() or not expires.isdigit()
            or len(expires) > 12 or not signature.isascii()):
        return Verdict.INVALID
    # HEAD is a GET without the body; a GET signature is good for both.
    method = "GET" if method.upper() == "HEAD" else method
    expected = _mac(secret_key, method, path, int(expires))
    if not hmac.compare_digest(expected, signature):
        return Verdict.INVALID
    if int(expires) < (time.time() if now is None else now):
        return Verdict.EXPIRED
    return Verdict.OK
