from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from mimamori.cli import main
from mimamori.commands.verdict import verdict_message
from pipeline.models import Verdict


def test_message_is_keyed_by_alert_id_and_round_trips() -> None:
    verdict = Verdict("al-0123", 2, "フルスキャンの結果、感染は確認されませんでした", datetime(2025, 3, 1, 3, tzinfo=timezone.utc))
    key, value = verdict_message(verdict)
    assert key == b"al-0123"
    record = orjson.loads(value)
    assert record == {"alert_id": "al-0123", "grade": 2, "note": verdict.note, "ts": "2025-03-01T03:00:00Z"}
    assert Verdict.from_record(record) == verdict


@pytest.mark.parametrize("args", [
    ["al-1", "--grade", "4", "--note", "x"],
    ["al-1", "--grade", "-1", "--note", "x"],
    ["al-1", "--grade", "two", "--note", "x"],
    ["al-1", "--grade", "2", "--note", "  "],
    ["al-1", "--note", "x"],
    ["--grade", "2", "--note", "x"],
])
def test_bad_arguments_exit_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verdict", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mimamori verdict:")
