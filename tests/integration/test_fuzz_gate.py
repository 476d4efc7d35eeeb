"""The fuzz gate: schemathesis over every operation of ``/openapi.json`` against the running
system (uvicorn API, real PostgreSQL, Redis, worker, simulator). A few examples per operation,
valid and invalid, generated deterministically; any 5xx fails the test, as does a connection
the server closed without an answer.

The tenant used has a Pro plan (1,000 requests per minute per endpoint, so the limiter does not
mask validation) and no credits: a request that passes every check ends in 406
``insufficient_credits`` instead of starting a paid job, so the gate exercises validation,
authentication, intake and the management routes in well under a minute. The job pipeline's own
failure paths are covered by the endpoint and lifecycle tests.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.integration.system import System

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))  # per operation and generation mode

# Operations the gate does not send, with the reason. Everything else in /openapi.json is sent.
NOT_EXERCISED: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def fuzz_key(make_key) -> str:
    from sqlalchemy import select

    from core import credits
    from core.db import session_factory
    from core.models import Tenant

    key = make_key("fuzzer", "pro")
    with session_factory().begin() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name == "fuzzer"))
        if tenant.credits:
            credits.grant(session, tenant.id, -tenant.credits, "fuzz gate: no credits")
    return key


def _describe(case: Any, response: requests.Response | None, error: Exception | None) -> str:
    body = case.body if not isinstance(case.body, (bytes, bytearray)) else f"<{len(case.body)} bytes>"
    try:
        shown = json.dumps(body, default=str)[:300]
    except (TypeError, ValueError):
        shown = repr(body)[:300]
    what = f"{response.status_code} {response.text[:300]}" if response is not None else repr(error)
    return f"{case.method} {case.formatted_path} query={case.query} body={shown} -> {what}"


def test_no_operation_answers_5xx(system: System, fuzz_key: str):
    schema = schemathesis.openapi.from_url(f"{system.api_url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    sent: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 80, f"only {len(operations)} operations in /openapi.json"

    for operation in operations:
        if (operation.method.upper(), operation.path) in NOT_EXERCISED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                response, error = None, None
                try:
                    response = case.call(base_url=system.api_url, session=session,
                                         headers={"X-API-Key": fuzz_key}, timeout=60)
                except requests.RequestException as exc:  # closed with no answer, reset, timeout
                    error = exc
                sent[operation.label] = sent.get(operation.label, 0) + 1
                if error is not None or response.status_code >= 500:
                    failures.append(_describe(case, response, error))

            try:
                send()
            except Exception as exc:  # noqa: BLE001 - a strategy that cannot generate is reported
                if "Unsatisfiable" not in type(exc).__name__:
                    failures.append(f"{operation.label} ({mode}): generation failed: {exc!r}"[:400])

    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:40])
    assert sum(sent.values()) >= len(operations) * 2, sent
