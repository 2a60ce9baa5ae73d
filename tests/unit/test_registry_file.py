from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Tenant, Utm
from pipeline.registry_file import RegistryFileError, load_registry_file, registry_problems


def good_file() -> dict[str, Any]:
    return {
        "tenants": [
            {"tenant_id": "t-1", "name": "Alpha 株式会社", "notify_emails": ["a@alpha.example", "b@alpha.example"],
             "locale": "ja", "service_start": "2026-04-10", "contract_end": None, "industry": "manufacturing",
             "region": "kanto", "size_band": "10-49", "active": True},
            {"tenant_id": "t-2", "name": "Beta", "notify_emails": ["ops@beta.example"], "locale": "en", "active": False},
        ],
        "utms": [
            {"utm_id": "utm-1", "tenant_id": "t-1", "model": "ZA-SA3500G", "registered_at": "2026-04-01T10:00:00+09:00",
             "active": True},
            {"utm_id": "utm-2", "tenant_id": "t-2"},
        ],
    }


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, data: Any) -> list[str]:
    with pytest.raises(RegistryFileError) as raised:
        load_registry_file(write(tmp_path, data))
    return raised.value.problems


def test_a_good_file_loads(tmp_path: Path) -> None:
    registry = load_registry_file(write(tmp_path, good_file()))
    assert registry.tenants["t-1"] == Tenant(
        "t-1", "Alpha 株式会社", ("a@alpha.example", "b@alpha.example"), "ja", date(2026, 4, 10), None,
        "manufacturing", "kanto", "10-49", True,
    )
    assert registry.tenants["t-2"].active is False and registry.tenants["t-2"].locale == "en"
    assert registry.utms["utm-1"] == Utm("utm-1", "t-1", "ZA-SA3500G", datetime(2026, 4, 1, 1, tzinfo=timezone.utc), True)
    assert registry.tenant_of("utm-2") == registry.tenants["t-2"]


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    data = good_file()
    data["tenants"][0]["notify_emails"] = ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]
    data["tenants"][1]["notify_emails"] = ["not-an-address"]
    data["tenants"].append({"tenant_id": "t-1", "name": "Dup", "notify_emails": [], "service_start": "2026-02-30"})
    data["utms"].append({"utm_id": "utm-1", "tenant_id": "t-ghost", "registered_at": "2026-02-30T00:00:00Z"})
    problems = problems_of(tmp_path, data)
    text = "\n".join(problems)
    assert "tenants[0].notify_emails" in text and "less than or equal to 3 items" in text
    assert "tenants[1].notify_emails[0]" in text
    assert "tenants[2].notify_emails" in text
    assert "tenants[2].service_start: \"2026-02-30\" must be date" in text
    assert "tenant id 't-1' appears 2 times" in text
    assert "UTM id 'utm-1' appears 2 times" in text
    assert "utms[2]: tenant 't-ghost' of UTM 'utm-1' is not in the file" in text
    assert "registered_at '2026-02-30T00:00:00Z' is not a real time" in text
    assert len(problems) == 8, problems


@pytest.mark.parametrize("data, fragment", [
    ({"tenants": []}, "file: must contain ['utms'] properties"),
    ([], "file: must be object"),
    ({"tenants": [{"tenant_id": "t", "name": "n", "notify_emails": ["a@b.example"], "colour": "red"}], "utms": []},
     "tenants[0]: must not contain {'colour'} properties"),
    ({"tenants": [{"tenant_id": "t", "name": "n", "notify_emails": ["a@b.example"], "locale": "fr"}], "utms": []},
     "tenants[0].locale"),
    ({"tenants": [], "utms": [{"utm_id": "u", "tenant_id": "t", "registered_at": "2026-04-01"}]},
     "utms[0].registered_at"),
])
def test_schema_problems_say_where(data: Any, fragment: str) -> None:
    assert any(fragment in p for p in registry_problems(data)), registry_problems(data)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RegistryFileError, match="cannot read"):
        load_registry_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(RegistryFileError, match="not JSON"):
        load_registry_file(tmp_path / "bad.json")


# --- strict addresses (issue 20; CONTRACT.md: a plain local@domain) -----------------------------------

NOT_PLAIN = ["Boss<attacker@evil.example>", "Boss <attacker@evil.example>", "a@b.c\u0000x", "a@b.example\n",
             "a@b.example (comment)", "a@b.example, c@d.example", "x y@b.example", '"x"@b.example', "a@b",
             "a@b.example\u202e", "a\u200b@b.example", "<a@b.example>"]


@pytest.mark.parametrize("address", NOT_PLAIN)
@pytest.mark.parametrize("field", ["notify_emails", "admin_emails"])
def test_an_address_that_is_not_a_plain_local_at_domain_is_refused(tmp_path: Path, field: str, address: str) -> None:
    data = good_file()
    data["tenants"][0][field] = [address]
    problems = problems_of(tmp_path, data)
    assert any(field in p and "is not a plain address local@domain" in p for p in problems), problems


def test_plain_addresses_pass_and_the_schemas_carry_the_same_pattern() -> None:
    from pipeline.addresses import PATTERN, is_plain_address
    from pipeline.ingest.schemas import load_schema

    for address in ("a@b.example", "first.last+tag@sub.example.co.jp", "山田@例え.jp"):
        assert is_plain_address(address)
    assert not any(is_plain_address(a) for a in NOT_PLAIN)
    tenant = load_schema("tenant.json")["properties"]
    assert tenant["notify_emails"]["items"]["pattern"] == tenant["admin_emails"]["items"]["pattern"] == PATTERN
    assert load_schema("mail.json")["properties"]["to"]["items"]["pattern"] == PATTERN


def test_a_mail_never_goes_to_an_address_that_is_not_plain() -> None:
    from pipeline.mail.render import render_utm_mail
    from zoneinfo import ZoneInfo

    tenant = Tenant("t-1", "Alpha", ("Boss<attacker@evil.example>", "a@b.c\u0000x", "it@alpha.example"))
    mail = render_utm_mail("utm-down", tenant, "utm-1", None, datetime(2026, 12, 1, tzinfo=timezone.utc),
                           ZoneInfo("Asia/Tokyo"))
    assert mail.to == ("it@alpha.example",)
    assert "evil.example" not in mail.raw.split("\n\n")[0] and "a@b.c" not in mail.raw
