"""Tailored generation's integration fixtures: one trained model per tenant, built once for the
package (project → dataset → five images fetched from URLs → captions → completed → model →
training); training in the simulator is set to ~1.5 s."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.integration.bria_media import Files
from tests.integration.conftest import Client
from tests.integration.providers.bria.tailored import (LIME, ORANGE, PURPLE, TEAL, TRAINING_SECONDS, build_dataset,
                                                       trained_model, wait_model)
from tests.integration.system import System


@pytest.fixture(scope="package")
def lora_files() -> Iterator[Files]:
    server = Files()
    yield server
    server.close()


@pytest.fixture(scope="package")
def tenants(system: System, make_key) -> Iterator[tuple[Client, Client]]:
    system.sim("POST", "/_sim/tailored/config",
               json={"training_seconds": TRAINING_SECONDS, "captions_seconds": 0.3}).raise_for_status()
    a = Client(system.api_url, make_key("lora-a", "enterprise"))
    b = Client(system.api_url, make_key("lora-b", "enterprise"))
    yield a, b
    a.http.close()
    b.http.close()


@pytest.fixture(scope="package")
def world(tenants, lora_files) -> dict[str, Any]:
    """Tenant A: project/dataset/model on orange+teal images; tenant B: on purple+lime. Both
    trained (in parallel)."""
    a, b = tenants
    pa, da, ia = build_dataset(a, lora_files, "a", (ORANGE, TEAL))
    pb, db, _ = build_dataset(b, lora_files, "b", (PURPLE, LIME))
    ma = trained_model(a, da, "orange model")
    mb = trained_model(b, db, "purple model", version="max")
    ma = wait_model(a, ma["id"], {"Completed"})
    mb = wait_model(b, mb["id"], {"Completed"})
    return {"a": a, "b": b, "project_a": pa, "dataset_a": da, "images_a": ia, "model_a": ma,
            "project_b": pb, "dataset_b": db, "model_b": mb}


@pytest.fixture
def slow_training(system: System) -> Iterator[None]:
    """Training that outlasts the test's steps (so it can be stopped), restored afterwards."""
    system.sim("POST", "/_sim/tailored/config", json={"training_seconds": 60}).raise_for_status()
    yield
    system.sim("POST", "/_sim/tailored/config", json={"training_seconds": TRAINING_SECONDS}).raise_for_status()
