"""Each tenant's signing secret (``whsec_…``): made on first use, rotated with a grace period
during which the previous one signs too. Stored encrypted (core/secretbox.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.models import WebhookSecret, utcnow
from core.results import iso
from core.webhooks.signing import generate_secret


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> None:
    dialect_insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def tenant_secret(session: Session, tenant_id: str) -> WebhookSecret:
    """The tenant's signing secret, made on first use. The row's ``secret`` and
    ``previous_secret`` are plaintext; the database holds them encrypted (core/secretbox.py)."""
    row = session.get(WebhookSecret, tenant_id)
    if row is None:
        _insert_ignore(session, WebhookSecret, {"tenant_id": tenant_id, "secret": generate_secret(),
                                                "created_at": utcnow()})
        row = session.get(WebhookSecret, tenant_id)
    return row


def rotate_secret(session: Session, tenant_id: str, grace_seconds: float) -> WebhookSecret:
    """A new secret; the old one keeps signing (second signature) for ``grace_seconds``."""
    row = tenant_secret(session, tenant_id)
    now = utcnow()
    row.previous_secret = row.secret if grace_seconds > 0 else None
    row.previous_until = now + dt.timedelta(seconds=grace_seconds) if grace_seconds > 0 else None
    row.secret = generate_secret()
    row.rotated_at = now
    session.flush()
    return row


def active_secrets(row: WebhookSecret, now: dt.datetime | None = None) -> list[str]:
    out = [row.secret]
    if row.previous_secret and row.previous_until and row.previous_until > (now or utcnow()):
        out.append(row.previous_secret)
    return out


def secret_document(row: WebhookSecret) -> dict[str, Any]:
    now = utcnow()
    in_grace = bool(row.previous_secret and row.previous_until and row.previous_until > now)
    return {"secret": row.secret, "created_at": iso(row.created_at), "rotated_at": iso(row.rotated_at),
            "previous_secret_valid_until": iso(row.previous_until) if in_grace else None}
