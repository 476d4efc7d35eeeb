"""Standard Webhooks v1 signatures: ``webhook-signature: v1,<base64 HMAC-SHA256(secret,
"{webhook-id}.{webhook-timestamp}.{body}")>``; during a secret rotation's grace period the
header carries both signatures, space-separated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from typing import Sequence

SECRET_PREFIX = "whsec_"


def generate_secret(nbytes: int = 32) -> str:
    """``whsec_`` + base64 of ``nbytes`` (≥ 24) random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(max(24, nbytes))).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks v1 signature: ``v1,<base64 HMAC-SHA256>``."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
        "user-agent": "visiongate-webhooks/1",
    }
