"""A record of the registry topics is checked as `registry load` checks a file (contract, "Registry
records"): the worker refuses what the CLI refuses, keeps the previous version, logs and counts it."""
from __future__ import annotations

import copy
from datetime import date
from typing import Any

import orjson
import pytest

from agents.processors.registry import RegistryBooks
from pipeline.io.metrics import Metrics
from pipeline.models import Registry, Tenant, Utm
from pipeline.registry_file import RegistryRecordError, registry_problems, registry_record
from tests.unit.test_registry_file import good_file

TENANT = good_file()["tenants"][0]
UTM = good_file()["utms"][0]


def changed(record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    for name, value in fields.items():
        if value is ...:
            out.pop(name, None)
        else:
            out[name] = value
    return out


BAD_TENANTS = [
    changed(TENANT, active="false"),
    changed(TENANT, notify_emails=[f"{n}@alpha.example" for n in "abcde"]),
    changed(TENANT, notify_emails=[]),
    changed(TENANT, notify_emails=["Alpha <a@alpha.example>"]),
    changed(TENANT, notify_emails=["a@alpha.example", "a@alpha.example"]),
    changed(TENANT, admin_emails=["x@alpha.example"] * 4),
    changed(TENANT, locale="fr"),
    changed(TENANT, service_start="2026-02-30"),
    changed(TENANT, contract_end="tomorrow"),
    changed(TENANT, name=...),
    changed(TENANT, colour="red"),
]
BAD_UTMS = [
    changed(UTM, active=0),
    changed(UTM, active="true"),
    changed(UTM, tenant_id=...),
    changed(UTM, registered_at="2026-04-01"),
    changed(UTM, registered_at="2026-02-30T00:00:00Z"),
    changed(UTM, firmware=3),
]


def wire(record: Any) -> bytes:
    return orjson.dumps(record)


def test_a_good_record_is_taken_as_the_file_would_take_it() -> None:
    assert registry_record("tenant", b"t-1", wire(TENANT)) == Tenant.from_record(TENANT)
    utm = registry_record("utm", b"utm-1", wire(changed(UTM, registered_at="2026-04-01t10:00:00+09:00")))
    assert isinstance(utm, Utm) and utm.registered_at is not None and utm.registered_at.hour == 1
    assert registry_record("tenant", b"t-2", wire(good_file()["tenants"][1])).active is False


@pytest.mark.parametrize("record", BAD_TENANTS, ids=range(len(BAD_TENANTS)))
def test_a_tenant_the_cli_refuses_the_worker_refuses(record: dict[str, Any]) -> None:
    assert registry_problems({"tenants": [record], "utms": []}), "the case must be one `registry load` refuses"
    with pytest.raises(RegistryRecordError):
        registry_record("tenant", b"t-1", wire(record))


@pytest.mark.parametrize("record", BAD_UTMS, ids=range(len(BAD_UTMS)))
def test_a_utm_the_cli_refuses_the_worker_refuses(record: dict[str, Any]) -> None:
    assert registry_problems({"tenants": [TENANT], "utms": [record]}), "the case must be one `registry load` refuses"
    with pytest.raises(RegistryRecordError):
        registry_record("utm", b"utm-1", wire(record))


def test_the_problems_are_named_by_field() -> None:
    with pytest.raises(RegistryRecordError) as refused:
        registry_record("tenant", b"t-1", wire(changed(TENANT, active="false", notify_emails=["a@b.example"] * 5)))
    text = "\n".join(refused.value.problems)
    assert 'active: "false" must be boolean' in text and "notify_emails" in text


@pytest.mark.parametrize("key, value, fragment", [
    (b"t-1", b"{", "not JSON"),
    (b"t-1", b"[]", "must be object"),
    (b"t-9", wire(TENANT), "key 't-9' is not its tenant_id 't-1'"),
])
def test_what_no_file_can_carry_is_refused_too(key: bytes, value: bytes, fragment: str) -> None:
    with pytest.raises(RegistryRecordError) as refused:
        registry_record("tenant", key, value)
    assert any(fragment in p for p in refused.value.problems), refused.value.problems


def test_the_worker_keeps_the_previous_version_logs_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    registry, metrics = Registry(), Metrics()
    books = RegistryBooks(registry, metrics)
    books.tenants(b"t-1", wire(TENANT))
    books.utms(b"utm-1", wire(UTM))
    books.tenants(b"t-1", wire(changed(TENANT, active="false")))
    books.tenants(b"t-1", wire(changed(TENANT, notify_emails=[f"{n}@alpha.example" for n in "abcde"])))
    books.utms(b"utm-1", wire(changed(UTM, active=0)))
    books.utms(b"utm-2", wire(changed(UTM, utm_id="utm-2", active="no")))
    assert registry.tenants["t-1"] == Tenant.from_record(TENANT) and registry.tenants["t-1"].active
    assert registry.utms["utm-1"].active and "utm-2" not in registry.utms
    assert metrics.registry_refused.labels("tenant")._value.get() == 2
    assert metrics.registry_refused.labels("utm")._value.get() == 2
    assert sum("refused, its previous version stays" in r.getMessage() for r in caplog.records) == 4
    books.tenants(b"t-1", wire(changed(TENANT, active=False, contract_end="2027-03-31")))
    assert registry.tenants["t-1"].active is False and registry.tenants["t-1"].contract_end == date(2027, 3, 31)
    books.utms(b"utm-1", None)
    books.tenants(None, wire(TENANT))
    assert "utm-1" not in registry.utms and list(registry.tenants) == ["t-1"]
