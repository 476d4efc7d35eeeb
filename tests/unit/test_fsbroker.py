"""The embedded broker never shows a consumer a message file before its bytes are written."""

from __future__ import annotations

import os
from queue import Empty

import pytest
from kombu import Connection

from workers import fsbroker


def _channel(folder):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    conn = Connection("filesystem://", transport=fsbroker.Transport, transport_options=options)
    return conn, conn.default_channel


def test_a_message_becomes_visible_only_once_it_is_whole(tmp_path, monkeypatch):
    conn, channel = _channel(tmp_path)
    seen_while_writing = []
    real_replace = os.replace

    def replace(src, dst):
        # the moment before the rename: the bytes are written, the consumer sees nothing yet
        seen_while_writing.append(sorted(os.listdir(tmp_path)))
        with pytest.raises(Empty):
            channel._get("bria")
        real_replace(src, dst)

    monkeypatch.setattr(fsbroker.os, "replace", replace)
    channel._put("bria", {"body": "x" * 100_000})
    assert len(seen_while_writing) == 1 and seen_while_writing[0][0].startswith(".partial-")
    assert channel._get("bria") == {"body": "x" * 100_000}
    assert os.listdir(tmp_path) == []
    conn.release()


def test_the_app_uses_it_for_a_filesystem_broker(tmp_path):
    from core.settings import Settings
    from workers.app import make_celery

    app = make_celery(Settings(VISIONGATE_DATA_DIR=tmp_path, BROKER_URL="filesystem://"))
    with app.connection_for_write() as conn:
        assert conn.transport_cls is not None
        assert isinstance(conn.transport, fsbroker.Transport)
