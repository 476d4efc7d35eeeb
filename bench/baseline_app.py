"""Baselines served under the same uvicorn settings as the API (same command line, other app).

* ``POST /bare/generate-image`` – a bare FastAPI endpoint: parses the same body with the same
  pydantic model as the product (``BriaGenerateImageRequest``) and returns a small JSON.
* ``GET /bare/status/{id}`` – a bare FastAPI GET returning a small JSON.
* ``POST /typical/generate-image`` – the textbook implementation of "accept a job": a sync
  endpoint with a SQLAlchemy ORM session (``add`` / ``commit`` / ``refresh``, as in FastAPI's
  SQL tutorial) into its own table, then ``celery_app.send_task``. It lives here only, is never
  used by the product, and publishes to a queue nobody consumes (``bench_typical``; purged
  after the scenario).

``uvicorn bench.baseline_app:create_app --factory``; the orchestrator creates the table first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Iterator

from fastapi import Depends, FastAPI
from sqlalchemy import JSON, DateTime, String, create_engine
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core.settings import get_settings
from providers.bria.schemas import BriaGenerateImageRequest

TYPICAL_QUEUE = "bench_typical"
SMALL = {"status": "success", "result": {"request_id": "0" * 32, "status": "IN_PROGRESS"}}


class Base(DeclarativeBase):
    pass


class TypicalJob(Base):
    __tablename__ = "bench_typical_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    tenant: Mapped[str] = mapped_column(String(32), default="bench")
    params: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    status: Mapped[str] = mapped_column(String(16), default="QUEUED")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: dt.datetime.now(dt.UTC))


def create_tables(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="visiongate bench baselines")
    engine = create_engine(settings.db_url)  # textbook: default pool (5 + 10 overflow)
    SessionLocal = sessionmaker(bind=engine, autoflush=False)

    from workers.app import celery_app  # the product's Celery app: same broker, same settings

    def get_db() -> Iterator[Session]:
        db = SessionLocal()
        try:
            yield db
        finally:
            db.close()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/bare/generate-image", status_code=202)
    async def bare_generate(body: BriaGenerateImageRequest) -> dict[str, Any]:
        return SMALL

    @app.get("/bare/status/{task_id}")
    async def bare_status(task_id: str) -> dict[str, Any]:
        return {"status": "IN_PROGRESS", "request_id": task_id, "result": None, "error": None}

    @app.post("/typical/generate-image", status_code=202)
    def typical_generate(body: BriaGenerateImageRequest, db: Session = Depends(get_db)) -> dict[str, Any]:
        job = TypicalJob(params=body.model_dump(mode="json"), status="QUEUED")
        db.add(job)
        db.commit()
        db.refresh(job)
        celery_app.send_task("visiongate.start", args=[job.id], queue=TYPICAL_QUEUE)
        return {"status": "success", "result": {"request_id": job.id, "status": "IN_PROGRESS"}}

    return app
