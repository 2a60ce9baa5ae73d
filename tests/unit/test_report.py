"""The monthly report on a hand-built store (tests/support/report_store.py): its numbers are the
views' numbers; a quiet month, a mid-month start, ja and en; the charts' font has every glyph."""
from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import jsonschema
import orjson
import pytest

from pipeline.config import ReportAt
from pipeline.models import Tenant
from pipeline.report.charts import LABELS, availability_chart, detections_chart
from pipeline.report.fonts import FontMissing, has_glyphs, japanese_font
from pipeline.io.report_gather import gather_month, read_tenant
from pipeline.report.schedule import service_days
from pipeline.report.render import CATEGORY_LABELS, RenderedReport, render_report, report_message_id
from pipeline.report.schedule import due_at
from pipeline.report.summary import MonthlyReport, summarize
from pipeline.resources import SCHEMAS
from pipeline.io.store.backends import Store, open_store
from pipeline.io.store.views import read_view
from tests.support.report_store import MONTH, TENANTS, TZ, build_report_store, day, local

DUE = due_at(MONTH, ReportAt(), TZ)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(f"chdb://{tmp_path_factory.mktemp('report')}")
    try:
        build_report_store(store)
        yield store
    finally:
        store.close()


def report_of(store: Store, tenant_id: str) -> MonthlyReport:
    return summarize(gather_month(store, TENANTS[tenant_id], MONTH, TZ, DUE))


def parsed(rendered: RenderedReport) -> EmailMessage:
    return message_from_string(rendered.mail.raw, policy=policy.default)  # type: ignore[return-value]


def test_the_numbers_are_the_views_numbers(store: Store) -> None:
    report = report_of(store, "ta")
    first, last = MONTH.first_day, MONTH.last_day
    rows = read_view(store, "portal_detections_daily", tz=str(TZ), tenant="ta", from_day=first, to_day=last)
    assert report.detections == sum(int(r["detections"]) for r in rows) == 18
    assert report.blocked == sum(int(r["detections"]) for r in rows if r["action"] in ("blocked", "disarmed")) == 17
    assert report.by_type == {"av": 7, "ips": 7, "url": 4}
    assert report.detections_by_day[day(3)] == {"av": 5, "ips": 3, "url": 2}
    assert report.detections_by_day[day(1)] == {"av": 1, "ips": 0, "url": 0}   # 00:00 local on the 1st
    peers = read_view(store, "portal_peer_average_daily", tz=str(TZ), from_day=first, to_day=last)
    assert report.peer_detections == pytest.approx(sum(float(r["avg_detections"]) for r in peers))
    # ta, tb and three quiet peers are the active tenants in service on day 3 (tc starts on the 16th,
    # td is inactive)
    assert report.peer_by_day[day(3)] == pytest.approx({"av": 1.0, "ips": 0.6, "url": 0.4})
    alerts = [a for a in read_view(store, "portal_alerts", tz=str(TZ), tenant="ta", from_day=first, to_day=last)
              if a["alert_id"] != "a-old"]
    assert report.alert_count == len(alerts) == 4
    assert report.alerts_by_grade == {3: 2, 2: 0, 1: 1, 0: 1}
    assert report.alerts_by_status == {"open": 2, "investigating": 1, "closed": 1}
    assert [(a.alert_id, a.claim_open, a.insurance_until) for a in report.severe] == [
        ("a-sev", True, day(10) + timedelta(days=30)), ("a-sev2", False, None)]
    assert report.top_categories == (("malware", 7), ("exploit", 4), ("scan", 3), ("phishing", 2), ("pua", 1))
    ua1, ua2 = report.utms
    hours = len(MONTH.days()) * 24
    assert (ua1.utm_id, ua1.stops, ua1.offline_seconds) == ("ua1", 2, 30 * 3600)
    assert ua1.online_share == pytest.approx(1 - 30 / hours)
    assert (ua2.utm_id, ua2.stops, ua2.online_share) == ("ua2", 0, 1.0)
    assert report.stops == 2 and not report.quiet and not report.partial


def test_the_ja_report_says_it_all_in_text_and_embeds_both_charts(store: Store) -> None:
    rendered = render_report(report_of(store, "ta"), DUE, TZ)
    mail, message = rendered.mail, parsed(rendered)
    assert mail.kind == "monthly-report" and mail.to == ("it@aoba.example",)
    assert mail.subject == f"[mimamori] {MONTH.year}年{MONTH.month}月の月次レポート"
    assert message["Message-ID"] == mail.message_id == report_message_id("ta", str(MONTH))
    assert message["X-Mimamori-Kind"] == "monthly-report" and message["X-Mimamori-Month"] == str(MONTH)
    text = message.get_body(("plain",)).get_content()
    assert "今月は★★★が2件、UTM停止が2回ありました。" in text
    assert "検知数: 18 件（ブロック・無害化 17 件）" in text
    assert "1. マルウェア: 7 件" in text
    assert "ua1: 稼働率 95.8%、停止 2 回（合計 30時間0分）" in text
    assert f"サイバー保険の請求期限: {(day(10) + timedelta(days=30)).isoformat()}" in text
    assert text.count("サイバー保険の請求期限") == 1            # a-sev2 is not insured
    html_part = message.get_body(("html",))
    html = html_part.get_content()
    related = message.get_body(("related",))
    images = {part["Content-ID"].strip("<>"): part.get_content() for part in related.iter_attachments()}
    assert len(images) == 2 and all(png.startswith(PNG) for png in images.values())
    for cid in images:
        assert f'src="cid:{cid}"' in html
    assert set(rendered.images) == {"detections.png", "availability.png"}


def test_same_tenant_and_month_same_message_id_whatever_the_content(store: Store) -> None:
    first = render_report(report_of(store, "ta"), DUE, TZ).mail
    later = summarize(gather_month(store, TENANTS["ta"], MONTH, TZ, DUE + timedelta(days=40)))
    again = render_report(later, DUE + timedelta(days=40), TZ).mail
    assert first.message_id == again.message_id
    assert report_message_id("ta", str(MONTH.next())) != first.message_id
    assert report_message_id("tb", str(MONTH)) != first.message_id


def test_a_quiet_month_gets_a_short_reassuring_report_in_english(store: Store) -> None:
    report = report_of(store, "tb")
    assert report.quiet and report.alert_count == 0 and report.stops == 0 and report.detections == 3
    rendered = render_report(report, DUE, TZ)
    message = parsed(rendered)
    assert rendered.mail.to == ("admin@birch.example",)
    assert rendered.mail.subject.startswith("[mimamori] Monthly report for ")
    text = message.get_body(("plain",)).get_content()
    assert "There was no alert to act on and no UTM stop this month." in text
    assert "blocked or disarmed 3 of them" in text
    assert "* Alerts" not in text and "★★★" not in text
    assert "ub1: online 100.0%, no stop" in text
    assert len(text.splitlines()) < 30


def test_a_tenant_that_started_mid_month_gets_the_days_it_had(store: Store) -> None:
    assert service_days(TENANTS["tc"], MONTH) == tuple(MONTH.days()[15:])
    report = report_of(store, "tc")
    assert report.partial and list(report.detections_by_day) == MONTH.days()[15:]
    assert report.detections == 2 and report.top_categories == (("ransomware", 2),)
    uc1, = report.utms
    assert uc1.online_share == 1.0 and uc1.stops == 0       # not seen before 09:00 on the 16th: not counted
    assert [s.status for s in uc1.segments] == ["never_seen", "online"]
    assert uc1.segments[0].start == local(16, 0) and uc1.segments[1].start == local(16, 9)
    text = parsed(render_report(report, DUE, TZ)).get_body(("plain",)).get_content()
    assert f"サービス期間: {MONTH.month}月16日〜{MONTH.month}月{MONTH.last_day.day}日、{len(MONTH.days()) - 15}日間" in text
    assert "今月は対応が必要なアラートも、UTMの停止もありませんでした。" in text


def test_admin_emails_take_precedence_when_the_tenant_record_has_them(store: Store) -> None:
    tenant = replace(TENANTS["ta"], admin_emails=("boss@aoba.example",))
    report = summarize(gather_month(store, tenant, MONTH, TZ, DUE))
    assert render_report(report, DUE, TZ).mail.to == ("boss@aoba.example",)


def test_a_tenant_not_in_service_that_month_has_no_report(store: Store) -> None:
    later = Tenant("tz", "Later KK", ("a@later.example",), service_start=MONTH.next().first_day)
    with pytest.raises(ValueError, match="not in service"):
        render_report(summarize(gather_month(store, later, MONTH, TZ, DUE)), DUE, TZ)


def test_the_tenant_is_read_from_the_registry_mirror(store: Store) -> None:
    assert read_tenant(store, "tc") == TENANTS["tc"]
    assert read_tenant(store, "nobody") is None


def test_the_japanese_font_is_installed_and_has_every_label_glyph() -> None:
    try:
        font = japanese_font()
    except FontMissing as exc:
        pytest.fail(f"{exc}  (run scripts/fonts.sh install, as make setup does)")
    words = "".join(str(v) for labels in LABELS.values() for v in labels.values())
    words += "".join(CATEGORY_LABELS["ja"].values()) + "株式会社あおば"
    assert has_glyphs(Path(font), words) == [], "the report font cannot draw these characters (tofu)"


def test_charts_draw_without_a_missing_glyph(store: Store, tmp_path: Path) -> None:
    """matplotlib warns "Glyph ... missing from font(s)" when it would draw a box: that fails here."""
    report = report_of(store, "ta")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Gg]lyph.*missing.*")
        for locale in ("ja", "en"):
            for chart in (detections_chart, availability_chart):
                png = chart(report, locale)
                assert png.startswith(PNG) and len(png) > 5000
                (tmp_path / f"{chart.__name__}-{locale}.png").write_bytes(png)


def test_the_report_mail_is_a_valid_outbox_record(store: Store) -> None:
    schema = orjson.loads((SCHEMAS / "mail.json").read_bytes())
    jsonschema.validate(render_report(report_of(store, "tb"), DUE, TZ).mail.to_record(), schema)


def test_a_month_to_date_ends_today(store: Store) -> None:
    report = summarize(gather_month(store, TENANTS["ta"], MONTH, TZ, local(10, 12)))
    assert list(report.detections_by_day) == MONTH.days()[:10]
    assert report.data.end == local(10, 12)
    assert report.by_type == {"av": 7, "ips": 3, "url": 2} and report.stops == 1


def test_the_store_says_which_reports_were_delivered(store: Store) -> None:
    from pipeline.io.report_gather import delivered_reports
    from pipeline.rows import mail_row

    mail = render_report(report_of(store, "tb"), DUE, TZ).mail
    ids = {t: report_message_id(t, str(MONTH)) for t in ("ta", "tb")}
    assert delivered_reports(store, ids, DUE - timedelta(days=1)) == set()
    store.insert("mails", [mail_row(mail, DUE + timedelta(seconds=3))])
    assert delivered_reports(store, ids, DUE - timedelta(days=1)) == {"tb"}
    assert delivered_reports(store, {"ta": ids["ta"]}, DUE - timedelta(days=1)) == set()
    assert delivered_reports(store, ids, DUE + timedelta(days=1)) == set()


def test_text_from_events_is_defanged_in_the_text_and_html_parts(store: Store) -> None:
    """A threat category and an alert title carrying a link (issue 20: both reached the report live)."""
    from pipeline.report.summary import SevereAlert

    report = report_of(store, "ta")
    crafted = replace(report, top_categories=(("https://evil.example/fix", 3), ("malware", 1)),
                      severe=(SevereAlert("a-x", "Call https://evil.example/fix", "ua1", "192.0.2.10", local(3, 10),
                                          "open", None, False),))
    rendered = render_report(crafted, DUE, TZ)
    message = parsed(rendered)
    parts = [rendered.text, rendered.html, message.get_body(("plain",)).get_content(),
             message.get_body(("html",)).get_content()]
    for part in parts:
        assert "hxxps://evil[.]example/fix" in part
        assert "evil.example" not in part and "https://evil" not in part


def _green_pixels(png: bytes) -> int:
    import io

    from matplotlib import image

    pixels = image.imread(io.BytesIO(png))[:, :, :3]
    target = (0x27 / 255, 0xAE / 255, 0x60 / 255)
    return int((abs(pixels - target).max(axis=2) < 0.02).sum())


def test_a_utm_online_since_this_morning_is_drawn_online_as_its_text_says(store: Store) -> None:
    """Month to date on the 10th at noon; the UTM's first sign of life was at 08:00 that day. Its
    availability is 100% of the time watched, and the strip shows it online (it was a grey 未接続
    strip over the whole month with an invisible sliver of green)."""
    from pipeline.report.summary import Segment, UtmMonth

    report = summarize(gather_month(store, TENANTS["ta"], MONTH, TZ, local(10, 12)))
    start, morning, now = report.data.start, local(10, 8), local(10, 12)
    utm = UtmMonth(utm_id="u-new", status_now="online", stops=0, online_share=1.0, offline_seconds=0.0,
                   segments=(Segment(start, morning, "never_seen"), Segment(morning, now, "online")))
    legend_only = _green_pixels(availability_chart(replace(report, utms=()), "ja"))
    drawn = _green_pixels(availability_chart(replace(report, utms=(utm,)), "ja")) - legend_only
    assert drawn > 200, drawn  # 112 before: a sliver of a 31-day axis
