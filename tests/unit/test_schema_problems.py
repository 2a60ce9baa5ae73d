"""pipeline.schema_problems (fastjsonschema, the runtime's) names the same places as `jsonschema`.

`jsonschema` is test-only: here it is the reference that the runtime's walk is compared with, on
documents broken at random places.
"""
from __future__ import annotations

import copy
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry as SchemaStore
from referencing import Resource

from pipeline.ingest.schemas import SCHEMA_BASE, load_schema
from pipeline.schema_problems import schema_problems

DOCUMENTS = ("tenant.json", "utm.json", "registry-file.json", "notice-file.json", "notice.json")
STORE = SchemaStore().with_resources((SCHEMA_BASE + n, Resource.from_contents(load_schema(n))) for n in DOCUMENTS)

GOOD: dict[str, Any] = {
    "registry-file.json": {
        "tenants": [
            {"tenant_id": "t-1", "name": "Alpha 株式会社", "notify_emails": ["a@alpha.example"], "locale": "ja",
             "service_start": "2026-04-10", "contract_end": None, "industry": "manufacturing", "active": True},
            {"tenant_id": "t-2", "name": "Beta", "notify_emails": ["ops@beta.example"], "locale": "en"},
        ],
        "utms": [{"utm_id": "utm-1", "tenant_id": "t-1", "model": "ZA-SA3500G",
                  "registered_at": "2026-04-01T10:00:00+09:00", "active": True}],
    },
    "notice.json": {
        "notice_id": "mnt-1", "kind": "maintenance-planned", "starts_at": "2027-01-16T01:00:00+09:00",
        "ends_at": "2027-01-16T04:00:00+09:00", "audience": {"models": ["UTM-100"], "firmware": ["7.2.1"]},
        "title": {"ja": "更新", "en": "Upgrade"}, "body": {"ja": "停止します。"}, "mail": True,
        "version": 2, "cancelled": False, "short_notice": False, "published_at": "2026-12-01T00:00:00Z",
    },
}
GOOD["notice-file.json"] = {k: v for k, v in GOOD["notice.json"].items()
                            if k not in ("version", "cancelled", "short_notice", "published_at")}

NAMED = set(load_schema("notice.json")["properties"]) | set(load_schema("notice-file.json")["$defs"]["content"]["properties"])
ODD = st.sampled_from([None, "", 0, -1, 1.5, True, "x" * 300, [], {}, ["a@b.example"] * 4, {"extra": 1},
                       "2026-02-30", "2026-04-01", "not-an-address", "a@b", "fr", {"all": True}, {"ja": ""}])


def reference_places(document: str, data: Any, whole: str) -> set[str]:
    validator = jsonschema.Draft202012Validator(
        load_schema(document), registry=STORE, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    places = set()
    for error in validator.iter_errors(data):
        if error.validator == "unevaluatedProperties" and isinstance(data, dict) and not set(data) - NAMED:
            # jsonschema drops what a failing `$ref`/`allOf` evaluated, so it adds "unevaluated
            # properties" for names that the schema does define; the runtime names only the real problem.
            continue
        out = ""
        for part in error.absolute_path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        places.add(out or whole)
    return places


def places(problems: list[str]) -> set[str]:
    return {problem.split(": ", 1)[0] for problem in problems}


def containers(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += containers(sub, path + (key,))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += containers(sub, path + (index,))
    return found


@st.composite
def broken(draw: st.DrawFn) -> tuple[str, Any]:
    document = draw(st.sampled_from(sorted(GOOD)))
    data = copy.deepcopy(GOOD[document])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(containers(data)))
        if not path:
            data = copy.deepcopy(draw(ODD)) if draw(st.integers(0, 9)) == 0 else data
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "tenant_id", "level", "en"]))] = copy.deepcopy(draw(ODD))
        else:
            parent[path[-1]] = copy.deepcopy(draw(ODD))
    return document, data


def test_good_documents_have_no_problem() -> None:
    for document, data in GOOD.items():
        assert schema_problems(data, document) == [], document
        assert reference_places(document, data, "file") == set()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken())
def test_the_same_places_as_jsonschema(case: tuple[str, Any]) -> None:
    document, data = case
    assert places(schema_problems(data, document)) == reference_places(document, data, "file"), data


def test_problems_say_what_is_wrong() -> None:
    data = copy.deepcopy(GOOD["registry-file.json"])
    data["tenants"][0]["service_start"] = "2026-02-30"
    data["tenants"][1]["colour"] = "red"
    del data["utms"][0]["tenant_id"]
    assert schema_problems(data, "registry-file.json") == [
        'tenants[0].service_start: "2026-02-30" must be date',
        "tenants[1]: must not contain {'colour'} properties",
        "utms[0]: must contain ['tenant_id'] properties",
    ]
    notice = {**GOOD["notice.json"], "colour": 1, "audience": {"all": True, "tenants": ["t"]}}
    assert schema_problems(notice, "notice.json", "notice") == [
        "notice: must not contain ['colour'] properties",
        "audience: must be valid exactly by one definition (0 matches found)",
    ]
