"""Secrets the gateway must read back (webhook signing secrets), stored encrypted.

Key: HKDF-SHA256 of ``VISIONGATE_SECRET_KEY`` with a fixed salt and info label, 32 bytes, used
as a Fernet key (AES-128-CBC + HMAC-SHA256, random IV: the same secret encrypts differently
each time). Stored form: ``v1:`` + the Fernet token. A value without the prefix is a plaintext
secret from before encryption (``whsec_…`` never starts with ``v1:``); it is read as it is and
encrypted on the next write, and migration 0008 encrypts all of them.

Changing ``VISIONGATE_SECRET_KEY`` makes the stored secrets unreadable (as it already makes every
API key unknown): reading one then fails with ``UndecryptableSecret``.

``SealedText`` is the column type: the ORM and Core statements see the plaintext, the database
only the ``v1:`` form.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text, TypeDecorator

from core.settings import get_settings

PREFIX = "v1:"
_SALT = b"visiongate/secretbox"
_INFO = b"visiongate v1 webhook signing secrets"


class UndecryptableSecret(RuntimeError):
    """A stored secret does not decrypt with the current VISIONGATE_SECRET_KEY."""


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _current_key() -> str:
    return get_settings().secret_key


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(plaintext: str, secret_key: str | None = None) -> str:
    """``v1:<Fernet token>`` of ``plaintext`` under the key derived from ``secret_key``
    (default: the settings' ``VISIONGATE_SECRET_KEY``)."""
    token = _fernet(secret_key if secret_key is not None else _current_key()).encrypt(plaintext.encode())
    return PREFIX + token.decode("ascii")


def unseal(value: str, secret_key: str | None = None) -> str:
    """The plaintext of a stored value (a legacy plaintext value is returned as it is)."""
    if not is_sealed(value):
        return value
    try:
        plain = _fernet(secret_key if secret_key is not None else _current_key()).decrypt(value[len(PREFIX):])
    except InvalidToken:
        raise UndecryptableSecret(
            "a stored webhook signing secret does not decrypt with the current VISIONGATE_SECRET_KEY "
            "(was the key changed? restore the one it was encrypted with)") from None
    return plain.decode()


class SealedText(TypeDecorator):
    """A text column stored as ``seal(value)`` and read back as ``unseal(value)``."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else seal(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else unseal(value)
