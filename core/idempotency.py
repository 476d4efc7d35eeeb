"""Idempotency keys: a retried create answers what the first one answered.

A client sends ``Idempotency-Key`` with a ``POST`` that creates a job or a batch. The key is
claimed for the tenant before anything is created (one ``INSERT … ON CONFLICT DO NOTHING``, so
of two requests racing with the same key exactly one wins), and the answer is stored with it
once the job or batch exists. Later requests with the key:

* the same request (same endpoint, same fingerprint) after the answer was stored: the stored
  status code and body, nothing created or charged again (``Replay``);
* a different request: refused (``Reused``);
* while the first is still running: refused, retry shortly (``Busy``).

The job or batch is linked to its key in the transaction that creates it (``link``: the key's
``request_id``), so a holder that dies after creating but before storing the answer leaves no
gap: a retry after its ``lock_until`` adopts the key with the job (``Claimed.request_id``) and
answers from the job as it stands, creating nothing. A claim whose holder died before creating
anything is taken over afresh after ``lock_until``. A key lives ``ttl`` seconds from its first
use, then it is free again and the sweeper deletes it.
A request that ends before creating anything (invalid body, not enough credits, database down)
releases its claim, so the retry runs afresh.

The fingerprint (``fingerprint``) is a SHA-256 over the endpoint and the request's parts; a JSON
part is hashed in a canonical form (keys sorted, no insignificant whitespace), so the same body
sent with its keys in another order is the same request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import IdempotencyKey, new_id, utcnow

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# An unfinished claim blocks its key this much longer than the request may itself take (the sync
# deadline for a job request), then a retry may take it over.
CLAIM_GRACE_SECONDS = 60.0
IN_PROGRESS, DONE = "in_progress", "done"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- the key, the fingerprint
def key_problem(key: str) -> tuple[str, str] | None:
    """Why ``key`` is not a usable idempotency key (an error type and a message), or None.
    A key is 1 to 255 visible ASCII characters (``!`` to ``~``: no spaces, no control
    characters), e.g. a UUID."""
    if not key:
        return "string_too_short", f"the {HEADER} header is empty: send 1 to {MAX_KEY_LENGTH} characters"
    if len(key) > MAX_KEY_LENGTH:
        return "string_too_long", f"the {HEADER} header may have at most {MAX_KEY_LENGTH} characters, not {len(key)}"
    bad = next((ch for ch in key if not "!" <= ch <= "~"), None)
    if bad is not None:
        return ("string_pattern_mismatch", f"the {HEADER} header may hold only visible ASCII characters "
                f"(! to ~, e.g. a UUID); found {bad!r}")
    return None


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8", "surrogatepass")


def _digest(part: Any) -> bytes:
    h = hashlib.sha256()
    if isinstance(part, (bytes, bytearray, memoryview)):
        h.update(b"b")
        h.update(part)
    elif hasattr(part, "read") and hasattr(part, "seek"):
        stream: BinaryIO = part
        h.update(b"b")
        stream.seek(0)
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
        stream.seek(0)
    else:
        h.update(b"j")
        h.update(canonical_json(part))
    return h.digest()


def fingerprint(endpoint: str, *parts: Any) -> str:
    """The request's identity for its key: the endpoint (``"POST /api/v1/…"``) and each part,
    a JSON value (hashed canonically), bytes or a seekable binary file (hashed as they are; left
    rewound)."""
    h = hashlib.sha256(endpoint.encode("utf-8", "surrogatepass"))
    for part in parts:
        h.update(_digest(part))
    return h.hexdigest()


# --------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claimed:
    """This request holds the key: create, then ``finish`` (or ``release``) with ``token``.
    ``request_id`` set: an earlier holder created that job or batch and died before storing
    its answer; answer from it (``finish``), create nothing."""
    token: str
    request_id: str | None = None


@dataclass(frozen=True)
class Replay:
    """The stored answer of the key's first request."""
    status_code: int
    body: str
    headers: dict[str, str]
    request_id: str | None


@dataclass(frozen=True)
class Busy:
    """The key's first request is still running."""


@dataclass(frozen=True)
class Reused:
    """The key was used for a different request (``endpoint`` is the first one's)."""
    endpoint: str


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(IdempotencyKey)


def claim(session: Session, tenant_id: str, key: str, print_: str, endpoint: str, *, ttl: float,
          lock_seconds: float, now: dt.datetime | None = None) -> Claimed | Replay | Busy | Reused:
    """Claim ``key`` for this request, or say why not. The caller commits. (Statements here say
    what they changed with ``RETURNING``: on PostgreSQL the ``INSERT … ON CONFLICT`` reports a
    row count of -1 through SQLAlchemy and psycopg, whether it inserted or not.)"""
    now = now or utcnow()
    token = new_id()
    fresh = dict(fingerprint=print_, endpoint=endpoint[:200], state=IN_PROGRESS, token=token, status_code=None,
                 response_body=None, response_headers=None, request_id=None, created_at=now,
                 locked_until=now + dt.timedelta(seconds=lock_seconds), expires_at=now + dt.timedelta(seconds=ttl))
    this = (IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
    for _ in range(3):  # a row released between our insert and our read: try again
        stmt = _insert(session).values(tenant_id=tenant_id, key=key, **fresh)
        if session.scalar(stmt.on_conflict_do_nothing(index_elements=["tenant_id", "key"])
                          .returning(IdempotencyKey.token)) is not None:
            return Claimed(token)
        row = session.execute(select(IdempotencyKey).where(*this).execution_options(populate_existing=True)
                              ).scalar_one_or_none()
        if row is None:
            continue
        if row.expires_at > now:
            if row.fingerprint != print_:
                return Reused(row.endpoint)
            if row.state == DONE:
                return Replay(row.status_code or 200, row.response_body or "null", dict(row.response_headers or {}),
                              row.request_id)
            if row.locked_until is None or row.locked_until > now:
                return Busy()
        # expired, or a claim whose holder is gone: take it over (the first to update wins); a
        # live key whose holder had created its job keeps it (the retry answers from that job)
        adopted = row.request_id if row.expires_at > now and row.state == IN_PROGRESS else None
        values = {**fresh, "request_id": adopted}
        if adopted is not None:
            values.update(created_at=row.created_at, expires_at=row.expires_at)
        taken = session.scalar(update(IdempotencyKey).where(*this, IdempotencyKey.token == row.token)
                               .values(**values).returning(IdempotencyKey.token))
        return Claimed(token, adopted) if taken is not None else Busy()
    return Busy()


def link(tenant_id: str, key: str, token: str, request_id: str) -> Any:
    """The statement that records, in the transaction creating it, which job or batch the claim
    ``token`` created (run it in that transaction)."""
    return (update(IdempotencyKey)
            .where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key,
                   IdempotencyKey.token == token, IdempotencyKey.state == IN_PROGRESS)
            .values(request_id=request_id))


def finish(session: Session, tenant_id: str, key: str, token: str, *, status_code: int, body: str,
           headers: dict[str, str] | None = None, request_id: str | None = None) -> bool:
    """Store the answer of the claim ``token`` (False: the claim was lost meanwhile)."""
    return session.scalar(
        update(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key,
                                     IdempotencyKey.token == token, IdempotencyKey.state == IN_PROGRESS)
        .values(state=DONE, status_code=status_code, response_body=body, response_headers=headers or {},
                request_id=request_id, locked_until=None).returning(IdempotencyKey.token)) is not None


def release(session: Session, tenant_id: str, key: str, token: str) -> bool:
    """Give up the claim ``token``: nothing was created, the key is free again (never once a job
    or batch is linked to it)."""
    return session.scalar(
        delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key,
                                     IdempotencyKey.token == token, IdempotencyKey.state == IN_PROGRESS,
                                     IdempotencyKey.request_id.is_(None))
        .returning(IdempotencyKey.token)) is not None


def sweep(session: Session, limit: int = 1000, now: dt.datetime | None = None) -> int:
    """Delete up to ``limit`` keys past their expiry; returns how many. The caller commits."""
    now = now or utcnow()
    victims = (select(IdempotencyKey.tenant_id, IdempotencyKey.key)
               .where(IdempotencyKey.expires_at <= now).limit(limit))
    return len(session.execute(delete(IdempotencyKey).where(
        tuple_(IdempotencyKey.tenant_id, IdempotencyKey.key).in_(victims)).returning(IdempotencyKey.key)).all())
