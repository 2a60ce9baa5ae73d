from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from mimamori.cli import main
from tests.unit.test_ingest import valid_event, valid_heartbeat
from tests.unit.test_registry_file import good_file


def recent() -> str:
    # `produce` judges time by the real clock, so the lines must be recent in real time
    return (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()


def test_produce_check_counts_and_names_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([
        orjson.dumps(valid_event(ts=recent())), orjson.dumps(valid_heartbeat(ts=recent())), b"{broken",
        orjson.dumps(valid_event(ts="2020-01-01T00:00:00Z")),
    ]) + b"\n")
    assert main(["produce", str(path), "--check"]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "read 4, sent 0, refused 2 (check only, nothing sent)"
    assert err.splitlines()[0].startswith("line 3: invalid_json: ")
    assert err.splitlines()[1].startswith("line 4: bad_timestamp: ts: 2020-01-01T00:00:00Z is older than")


def test_produce_check_of_a_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(valid_event(ts=recent())) + b"\n")
    assert main(["produce", str(path), "--check"]) == 0
    assert capsys.readouterr().out.startswith("read 1, sent 0, refused 0")


def test_produce_of_a_missing_file_is_status_2(tmp_path: Path) -> None:
    assert main(["produce", str(tmp_path / "missing.jsonl"), "--check"]) == 2


def test_produce_check_and_no_validate_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce", "--check", "--no-validate"]) == 2
    assert "not allowed" in capsys.readouterr().err


def test_registry_load_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(good_file()), encoding="utf-8")
    assert main(["registry", "load", str(path), "--check"]) == 0
    assert "2 tenants, 2 UTMs: ok" in capsys.readouterr().out


def test_registry_load_refuses_a_bad_file_naming_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = good_file()
    data["utms"].append({"utm_id": "utm-1", "tenant_id": "t-ghost"})
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["registry", "load", str(path)]) == 1
    err = capsys.readouterr().err
    assert "UTM id 'utm-1' appears 2 times" in err and "'t-ghost'" in err
    assert "refused: 2 problem(s), nothing published" in err


def test_registry_remove_needs_exactly_one_target() -> None:
    assert main(["registry", "remove"]) == 2
    assert main(["registry", "remove", "--tenant", "a", "--utm", "b"]) == 2
