"""`mimamori purge-tenant` against the real broker: null records for the tenant and its UTMs."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mimamori.cli import main
from pipeline.config import Topics
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.models import Tenant, Utm
from pipeline.io.store.backends import open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.rows import tenant_row, utm_row

pytestmark = pytest.mark.integration


def test_purge_publishes_registry_null_records(kafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kafka import KafkaConsumer

    ensure_topics(kafka.bootstrap, topic_specs(Topics()))
    url = f"chdb://{tmp_path}"
    now = datetime.now(timezone.utc)
    store = open_store(url)
    try:
        apply_migrations(store, "Asia/Tokyo", now)
        store.insert("tenants", [tenant_row(Tenant("gone", "Gone Co", ("a@gone.example",)), now)])
        store.insert("utms", [utm_row(Utm("gone-u1", "gone"), now), utm_row(Utm("gone-u2", "gone"), now)])
    finally:
        store.close()
    assert main(["purge-tenant", "gone", "--store", url, "--kafka", kafka.bootstrap]) == 0
    assert "null records for tenant gone and 2 UTM(s)" in capsys.readouterr().out
    found: dict[str, list[tuple[bytes, object]]] = {}
    for topic in ("registry.tenants", "registry.utms"):
        consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000, enable_auto_commit=False)
        found[topic] = [(m.key, m.value) for m in consumer if m.key and m.key.startswith(b"gone")]
        consumer.close()
    assert found["registry.tenants"] == [(b"gone", None)]
    assert sorted(found["registry.utms"]) == [(b"gone-u1", None), (b"gone-u2", None)]
