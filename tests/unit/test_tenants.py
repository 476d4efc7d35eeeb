import asyncio

import pytest
from sqlalchemy import select

from core.models import ApiKey
from core.tenants import authenticate, create_key, get_or_create_tenant, hash_key, revoke_key


def test_keys_are_random_prefixed_and_stored_only_as_keyed_hash(db):
    sessions, async_sessions = db
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "acme", "starter")
        row, key = create_key(s, "secret", tenant)
        _, key2 = create_key(s, "secret", tenant)
    assert key.startswith("vg_") and len(key) > 40 and key != key2
    with sessions() as s:
        stored = s.scalars(select(ApiKey)).all()
    assert all(key not in (k.key_hash, k.prefix) for k in stored)
    assert row.key_hash == hash_key("secret", key) != hash_key("other-secret", key)


def test_authenticate_and_revoke(db):
    sessions, async_sessions = db
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "acme", "pro")
        row, key = create_key(s, "secret", tenant)

    async def auth(k):
        async with async_sessions() as s:
            return await authenticate(s, hash_key("secret", k))

    principal = asyncio.run(auth(key))
    assert principal.tenant_name == "acme" and principal.plan == "pro"
    assert asyncio.run(auth(key + "x")) is None
    with sessions.begin() as s:
        assert revoke_key(s, row.prefix) == 1
    assert asyncio.run(auth(key)) is None


def test_fixed_dev_key_is_idempotent(db):
    sessions, _ = db
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "dev", "enterprise")
        a, _ = create_key(s, "secret", tenant, key="vg_fixed")
        b, _ = create_key(s, "secret", tenant, key="vg_fixed")
        assert a.id == b.id
        other = get_or_create_tenant(s, "other")
        with pytest.raises(ValueError):
            create_key(s, "secret", other, key="vg_fixed")


def test_unknown_plan_is_refused(db):
    sessions, _ = db
    with sessions.begin() as s, pytest.raises(ValueError):
        get_or_create_tenant(s, "x", "platinum")
