"""The OpenAPI document describes job control as the code does it: every webhook event a job
route accepts, the endpoints' events and defaults, the cancel route's answers with examples,
and the status route's progress and place in line."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from core.settings import Settings
from core.webhooks import schemas
from providers.registry import OPERATIONS


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings(VISIONGATE_ENV="test", DATABASE_URL="sqlite:///unused.db")).openapi()


def test_every_job_route_names_every_job_event_and_its_defaults(openapi):
    routes = [op for op in OPERATIONS.values() if op.kind.value == "job" and op.path]
    checked = 0
    for op in routes:
        doc = openapi["paths"].get(op.path, {}).get(op.method.lower())
        if doc is None or "webhook_events" not in doc.get("description", ""):
            continue
        checked += 1
        for event in (*schemas.JOB_EVENTS, *schemas.SHORT_NAMES):
            assert f"`{event}`" in doc["description"], (op.path, event)
    assert checked >= 40


def test_webhook_endpoints_list_every_event_and_the_default_ones(openapi):
    text = openapi["paths"]["/api/v1/webhooks/endpoints"]["post"]["description"]
    assert all(f"`{event}`" in text for event in schemas.ALL_EVENTS)
    defaults = text[text.index("default"):]
    assert all(f"`{event}`" in defaults for event in schemas.DEFAULT_ENDPOINT_EVENTS)


def test_cancel_documents_each_answer_with_an_example(openapi):
    answers = openapi["paths"]["/api/v1/jobs/{job_id}"]["delete"]["responses"]
    done = answers["200"]["content"]["application/json"]["example"]["result"]
    assert done["state"] == "CANCELLED" and done["error"]["code"] == "cancelled"
    assert {"cancelled_from", "credits_captured", "expires_at"} <= set(done)
    assert answers["409"]["content"]["application/json"]["example"]["error"]["code"] == "job_finished"
    assert "expired" in answers["404"]["description"]


def test_the_status_route_shows_progress_and_place_in_line(openapi):
    ok = openapi["paths"]["/api/v1/bria/status/{task_id}"]["get"]["responses"]["200"]
    examples = ok["content"]["application/json"]["examples"]
    assert examples["running"]["value"]["progress"] == 0.4
    assert examples["waiting"]["value"]["queue_position"] == 3
    assert "expires_at" in examples["completed"]["value"]


def test_each_provider_page_says_what_cancelling_costs():
    """Every provider with job endpoints says on its page what a cancel means for billing, as its
    plug-in declares it (``upstream_cancel``: the upstream task is stopped, credits released)."""
    from pathlib import Path

    from providers.registry import PLUGINS

    root = Path(__file__).resolve().parents[2]
    pages = 0
    for plugin in PLUGINS:
        if not any(op.kind.value == "job" for op in plugin.operations) or not plugin.docs:
            continue
        text = (root / plugin.docs).read_text(encoding="utf-8")
        assert "### Cancelling" in text, plugin.name
        section = text[text.index("### Cancelling"):].split("\n## ", 1)[0]
        keeps = "credits_captured: true" in section
        assert keeps != plugin.upstream_cancel, plugin.name
        pages += 1
    assert pages >= 4
