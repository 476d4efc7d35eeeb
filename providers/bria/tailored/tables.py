"""The gateway's records of tailored generation: each tenant's Bria projects, datasets, dataset
images and models.

One upstream Bria key serves every tenant, so the gateway keeps its own record of each object: the
tenant it belongs to, the integer id clients see (as in the Vision Studio reference) and the
upstream Bria id it mirrors. Every read and write is scoped by ``tenant_id``
(``repository.py``); another tenant's id is simply not found.

The tables live on this package's own ``MetaData`` (``metadata``, handed to the host by Bria's
``PLUGIN``: migrations/env.py compares it with the database). They are made by the host's
migration 0004, which also gives every ``tenant_id`` a foreign key to ``tenants`` (ON DELETE
CASCADE); that key exists in the database only, since these tables cannot name a table of the
host's metadata.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from providers.plugin import NAMING_CONVENTION, UTCDateTime


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)



class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


def _tenant() -> Mapped[str]:
    """The owning tenant (a foreign key to tenants.id in the database: see the module doc)."""
    return mapped_column(String(32))


class LoraProject(Base):
    __tablename__ = "lora_projects"
    __table_args__ = (Index("ix_lora_projects_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant()
    upstream_id: Mapped[str] = mapped_column(String(64))
    project_name: Mapped[str] = mapped_column(String(255))
    project_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ip_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip_medium: Mapped[str] = mapped_column(String(32))
    ip_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LoraDataset(Base):
    __tablename__ = "lora_datasets"
    __table_args__ = (Index("ix_lora_datasets_tenant_project", "tenant_id", "project_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant()
    project_id: Mapped[int] = mapped_column(ForeignKey("lora_projects.id", ondelete="CASCADE"))
    upstream_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    caption_prefix: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | completed
    # Bria's bulk re-caption state: empty | in_progress | completed
    captions_update_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LoraImage(Base):
    __tablename__ = "lora_images"
    __table_args__ = (Index("ix_lora_images_tenant_dataset", "tenant_id", "dataset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant()
    dataset_id: Mapped[int] = mapped_column(ForeignKey("lora_datasets.id", ondelete="CASCADE"))
    upstream_id: Mapped[str] = mapped_column(String(64))
    image_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    caption_source: Mapped[str | None] = mapped_column(String(16), nullable=True)  # automatic | manual
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LoraModel(Base):
    __tablename__ = "lora_models"
    __table_args__ = (Index("ix_lora_models_tenant_project", "tenant_id", "project_id"),
                      Index("ix_lora_models_status", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant()
    project_id: Mapped[int] = mapped_column(ForeignKey("lora_projects.id", ondelete="CASCADE"))
    # The dataset it was trained on; NULL once that dataset is deleted (the model stays usable).
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("lora_datasets.id", ondelete="SET NULL"),
                                                   nullable=True)
    upstream_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    training_version: Mapped[str] = mapped_column(String(16))  # light | max
    # Bria's model status: Created | InProgress | Completed | Failed | Stopping | Stopped
    status: Mapped[str] = mapped_column(String(16), default="Created")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    training_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    training_finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
