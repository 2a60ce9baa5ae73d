"""Service notices: the file checks (30-day rule), versions and cancellation, who they concern, their mails."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from email import message_from_string, policy
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from pipeline.models import Registry, Tenant, Utm
from pipeline.notices.audience import concerned_tenants
from pipeline.notices.check import (
    NoticeError, cancellation_of, notice_from_file_data, notice_from_wire, notice_problems, schema_problems,
)
from pipeline.notices.mail import notice_mails, notice_recipients
from pipeline.notices.model import Audience

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
TOKYO = ZoneInfo("Asia/Tokyo")


def planned(days_ahead: float = 40, **changes: Any) -> dict[str, Any]:
    start = NOW + timedelta(days=days_ahead)
    data: dict[str, Any] = {
        "notice_id": "mnt-1", "kind": "maintenance-planned",
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(),
        "audience": {"all": True}, "title": {"ja": "基盤の更新", "en": "Platform upgrade"},
        "body": {"ja": "サービスを停止します。", "en": "The service stops."},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def registry() -> Registry:
    return Registry(
        tenants={
            "t1": Tenant("t1", "株式会社一", ("alerts@one.example",), admin_emails=("admin@one.example", "boss@one.example")),
            "t2": Tenant("t2", "Two Ltd", ("alerts@two.example",), locale="en"),
            "t3": Tenant("t3", "三商店", ("alerts@three.example",), active=False),
            "t4": Tenant("t4", "四工業", ("alerts@four.example",), contract_end=date(2026, 11, 30)),
        },
        utms={
            "u1": Utm("u1", "t1", model="UTM-100", firmware="7.2.1"),
            "u2": Utm("u2", "t2", model="UTM-200", firmware="7.2.1"),
            "u3": Utm("u3", "t2", model="UTM-100", firmware="7.0.0", active=False),
            "u4": Utm("u4", "t3", model="UTM-100", firmware="7.2.1"),
        },
    )


# --- the 30-day rule ---------------------------------------------------------------------------

def test_a_planned_maintenance_30_days_ahead_is_taken() -> None:
    notice = notice_from_file_data(planned(30), NOW)
    assert notice.version == 1 and not notice.short_notice and notice.published_at == NOW


def test_a_planned_maintenance_less_than_30_days_ahead_is_refused_and_named() -> None:
    with pytest.raises(NoticeError) as refused:
        notice_from_file_data(planned(29.9), NOW)
    assert len(refused.value.problems) == 1
    assert "30 days ahead" in refused.value.problems[0] and "--short-notice" in refused.value.problems[0]


def test_short_notice_publishes_it_and_the_notice_and_its_mail_say_so() -> None:
    notice = notice_from_file_data(planned(3), NOW, short_notice=True)
    assert notice.short_notice
    mail = notice_mails(notice, registry(), NOW, TOKYO)[0]
    assert "短い予告期間" in message_from_string(mail.raw, policy=policy.default).get_body().get_content()
    assert not notice_from_file_data(planned(40), NOW, short_notice=True).short_notice


def test_an_emergency_maintenance_may_start_at_once() -> None:
    assert notice_from_file_data(planned(0.01, kind="maintenance-emergency"), NOW).kind == "maintenance-emergency"


def test_every_problem_is_named() -> None:
    data = {"notice_id": "bad id", "kind": "fault", "audience": {"models": []}, "title": {"en": "x"},
            "body": {"ja": ""}, "colour": "red", "starts_at": "2026-02-30T10:00:00+09:00"}
    problems = notice_problems(data, NOW)
    text = "\n".join(problems)
    for part in ("notice_id", "audience", "title", "body", "colour", "level: a fault needs its level"):
        assert part in text, (part, problems)
    assert len(problems) >= 6


def test_a_window_is_checked() -> None:
    start = NOW + timedelta(days=40)
    problems = notice_problems(planned(ends_at=start.isoformat()), NOW)
    assert any("not after starts_at" in p for p in problems)
    problems = notice_problems(planned(starts_at=None, ends_at=None), NOW)
    assert any(p.startswith("starts_at") for p in problems) and any(p.startswith("ends_at") for p in problems)
    assert any("only a fault" in p for p in notice_problems(planned(level="A"), NOW))


def test_a_maintenance_window_lasts_at_most_72_hours() -> None:
    start = NOW + timedelta(days=40)
    for kind in ("maintenance-planned", "maintenance-emergency"):
        assert notice_problems(planned(kind=kind, ends_at=(start + timedelta(hours=72)).isoformat()), NOW) == []
        [problem] = notice_problems(planned(kind=kind, ends_at=(start + timedelta(hours=72, minutes=1)).isoformat()), NOW)
        assert problem.startswith("ends_at") and "at most 72 hours" in problem and "72.0 hours" in problem
    centuries = planned(ends_at=datetime(2227, 1, 1, tzinfo=timezone.utc).isoformat())
    assert any("at most 72 hours" in p for p in notice_problems(centuries, NOW))


def test_a_window_written_to_the_topic_by_anyone_else_silences_72_hours_at_most() -> None:
    from pipeline.notices.windows import window_of

    start = NOW + timedelta(days=1)
    notice = notice_from_file_data(planned(), NOW)
    forged = replace(notice, starts_at=start, ends_at=datetime(2227, 1, 1, tzinfo=timezone.utc))
    window = window_of(forged)
    assert window is not None and window.ends_at == start + timedelta(hours=72)


def test_every_tenant_of_the_audience_the_registry_lacks_is_named() -> None:
    data = planned(audience={"tenants": ["t1", "ghost-b", "t2", "ghost-a"]})
    [problem] = notice_problems(data, NOW, known_tenants=set(registry().tenants))
    assert problem == "audience.tenants: not in the registry: ghost-a, ghost-b"
    assert notice_problems(planned(audience={"tenants": ["t1", "t2"]}), NOW, known_tenants=set(registry().tenants)) == []
    with pytest.raises(NoticeError, match="ghost-a, ghost-b"):
        notice_from_file_data(data, NOW, known_tenants=set(registry().tenants))


def test_notice_publish_check_with_a_registry_file_names_the_unknown_tenants(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mimamori.cli import main

    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps({"tenants": [{"tenant_id": "t1", "name": "One", "notify_emails": ["a@one.example"]}],
                                         "utms": []}), encoding="utf-8")
    notice = tmp_path / "notice.json"
    notice.write_text(json.dumps(planned(audience={"tenants": ["t1", "nobody"]})), encoding="utf-8")
    assert main(["notice", "publish", str(notice), "--check", "--registry", str(registry_file)]) == 1
    assert "not in the registry: nobody" in capsys.readouterr().err


# --- versions and cancellation -----------------------------------------------------------------

def test_republishing_makes_a_new_version_and_moving_later_keeps_the_announcement() -> None:
    first = notice_from_file_data(planned(40), NOW)
    later = NOW + timedelta(days=20)
    moved = planned(40, starts_at=(NOW + timedelta(days=41)).isoformat(),
                    ends_at=(NOW + timedelta(days=41, hours=3)).isoformat())
    second = notice_from_file_data(moved, later, previous=first)
    assert second.version == 2 and not second.short_notice
    earlier = planned(40, starts_at=(NOW + timedelta(days=39)).isoformat())
    with pytest.raises(NoticeError, match="30 days"):
        notice_from_file_data(earlier, later, previous=second)


def test_cancel_makes_the_next_version_and_cannot_be_repeated_or_republished() -> None:
    first = notice_from_file_data(planned(40), NOW)
    cancelled = cancellation_of(first, "mnt-1", NOW + timedelta(hours=1))
    assert cancelled.cancelled and cancelled.version == 2 and cancelled.title == first.title
    with pytest.raises(NoticeError, match="cancelled already"):
        cancellation_of(cancelled, "mnt-1", NOW)
    with pytest.raises(NoticeError, match="not on the notices topic"):
        cancellation_of(None, "nope", NOW)
    assert any("was cancelled" in p for p in notice_problems(planned(40), NOW, previous=cancelled))


def test_the_wire_record_round_trips_and_follows_its_schema() -> None:
    notice = notice_from_file_data(planned(40, audience={"models": ["UTM-100"], "firmware": ["7.2.1"]}), NOW)
    record = notice.to_record()
    assert schema_problems(record, "notice.json") == []
    assert notice_from_wire(orjson.dumps(record)) == notice
    assert schema_problems({**record, "version": 0}, "notice.json")
    with pytest.raises(NoticeError):
        notice_from_wire(orjson.dumps({k: v for k, v in record.items() if k != "version"}))


# --- who it concerns ---------------------------------------------------------------------------

def ids(audience: Audience) -> list[str]:
    return [t.tenant_id for t in concerned_tenants(audience, registry(), date(2026, 12, 1))]


def test_all_means_the_tenants_serviced_today() -> None:
    assert ids(Audience(all=True)) == ["t1", "t2"]


def test_a_list_of_tenants_keeps_the_known_serviced_ones() -> None:
    assert ids(Audience(tenants=("t2", "t3", "ghost"))) == ["t2"]


def test_audience_by_model_and_firmware() -> None:
    assert ids(Audience(models=("UTM-100",))) == ["t1"]          # u3 of t2 is inactive, t3 is inactive
    assert ids(Audience(firmware=("7.2.1",))) == ["t1", "t2"]
    assert ids(Audience(models=("UTM-200",), firmware=("7.2.1",))) == ["t2"]
    assert ids(Audience(models=("UTM-200",), firmware=("7.0.0",))) == []
    assert ids(Audience(firmware=("7.0.0",))) == []


# --- mails -------------------------------------------------------------------------------------

def test_each_concerned_tenant_gets_one_mail_to_its_administrators_in_its_language() -> None:
    notice = notice_from_file_data(planned(40), NOW)
    mails = notice_mails(notice, registry(), NOW, TOKYO)
    assert [(m.tenant_id, m.to, m.kind) for m in mails] == [
        ("t1", ("admin@one.example", "boss@one.example"), "maintenance-planned"),
        ("t2", ("alerts@two.example",), "maintenance-planned"),
    ]
    first = message_from_string(mails[0].raw, policy=policy.default)
    assert first["X-Mimamori-Kind"] == "maintenance-planned" and "計画メンテナンス" in first["Subject"]
    assert "Planned maintenance: Platform upgrade" in mails[1].subject
    again = notice_mails(notice, registry(), NOW + timedelta(minutes=5), TOKYO)
    assert [m.message_id for m in again] == [m.message_id for m in mails]
    assert len({m.message_id for m in mails}) == 2


def test_a_new_version_and_a_cancellation_are_new_mails() -> None:
    first = notice_from_file_data(planned(40), NOW)
    second = notice_from_file_data(planned(40, body={"ja": "時間を延長します。"}), NOW, previous=first)
    cancelled = cancellation_of(second, "mnt-1", NOW)
    ids_by_version = [{m.message_id for m in notice_mails(n, registry(), NOW, TOKYO)} for n in (first, second, cancelled)]
    assert all(len(i) == 2 for i in ids_by_version)
    assert not (ids_by_version[0] & ids_by_version[1]) and not (ids_by_version[1] & ids_by_version[2])
    update = notice_mails(second, registry(), NOW, TOKYO)[0]
    assert "【更新】" in update.subject
    cancel = notice_mails(cancelled, registry(), NOW, TOKYO)[0]
    assert cancel.kind == "notice-cancelled" and "【取消】" in cancel.subject
    assert message_from_string(cancel.raw, policy=policy.default)["X-Mimamori-Kind"] == "notice-cancelled"


def test_level_z_mails_nobody_and_its_cancellation_neither() -> None:
    fault = {"notice_id": "f1", "kind": "fault", "level": "Z", "audience": {"all": True},
             "title": {"ja": "軽微な障害"}, "body": {"ja": "影響はありません。"}}
    notice = notice_from_file_data(fault, NOW)
    assert notice_mails(notice, registry(), NOW, TOKYO) == []
    assert notice_mails(cancellation_of(notice, "f1", NOW), registry(), NOW, TOKYO) == []
    level_a = notice_from_file_data({**fault, "level": "A"}, NOW)
    assert [m.kind for m in notice_mails(level_a, registry(), NOW, TOKYO)] == ["fault", "fault"]


def test_firmware_is_portal_only_unless_it_says_otherwise() -> None:
    data = {"notice_id": "fw-1", "kind": "firmware", "audience": {"firmware": ["7.2.1"]},
            "title": {"ja": "ファームウェア 7.3.0"}, "body": {"ja": "電源を入れ直してください。"}}
    assert notice_mails(notice_from_file_data(data, NOW), registry(), NOW, TOKYO) == []
    mails = notice_mails(notice_from_file_data({**data, "mail": True}, NOW), registry(), NOW, TOKYO)
    assert [m.tenant_id for m in mails] == ["t1", "t2"]


def test_a_version_read_after_its_window_ended_is_not_mailed() -> None:
    notice = notice_from_file_data(planned(40), NOW)
    assert notice_recipients(notice, registry(), NOW + timedelta(days=41), TOKYO) == []
