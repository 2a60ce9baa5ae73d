"""The monthly report as one mail: a text part that reads alone, an HTML part with the two charts
embedded by Content-ID. Its Message-ID depends on tenant and month only."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.mail.render import compose, local_time, locale_of, message_id_for, render_template
from pipeline.mail.text import event_text, one_line
from pipeline.models import THREAT_TYPES, Mail, Tenant
from pipeline.report.charts import LABELS, availability_chart, detections_chart
from pipeline.report.summary import MonthlyReport

KIND = "monthly-report"
BUSIEST_DAYS = 3
CATEGORY_LABELS = {
    "ja": {"malware": "マルウェア", "ransomware": "ランサムウェア", "spyware": "スパイウェア", "c2": "C2通信（遠隔操作）",
           "phishing": "フィッシング", "exploit": "脆弱性を狙う攻撃", "scan": "ポートスキャン", "pua": "不要なアプリ（PUA）"},
    "en": {"malware": "malware", "ransomware": "ransomware", "spyware": "spyware", "c2": "command and control (C2)",
           "phishing": "phishing", "exploit": "exploits", "scan": "port scans", "pua": "unwanted applications (PUA)"},
}
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


@dataclass(frozen=True)
class RenderedReport:
    mail: Mail
    text: str
    html: str
    images: dict[str, bytes]
    """File name (`detections.png`, `availability.png`) -> PNG."""
    month: str = ""
    """The month reported, `YYYY-MM`."""


def report_recipients(tenant: Tenant) -> tuple[str, ...]:
    """The tenant's administrators when it has them (`admin_emails`), else its alert addresses."""
    return tenant.admin_emails or tenant.notify_emails


def report_message_id(tenant_id: str, month: str) -> str:
    return message_id_for(KIND, tenant_id, [month])


def _duration(seconds: float, locale: str) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if locale == "ja":
        return f"{hours}時間{minutes}分" if hours else f"{minutes}分"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _headline(report: MonthlyReport, locale: str) -> str:
    severe, stops = report.alerts_by_grade[3], report.stops
    if locale == "ja":
        parts = [f"★★★が{severe}件" if severe else "", f"UTM停止が{stops}回" if stops else ""]
        said = "、".join(p for p in parts if p)
        if said:
            return f"今月は{said}ありました。"
        return f"今月は★★★のアラートもUTMの停止もありませんでした（アラート {report.alert_count} 件）。"
    parts = [f"{severe} ★★★ {'alert' if severe == 1 else 'alerts'}" if severe else "",
             f"{stops} UTM {'stop' if stops == 1 else 'stops'}" if stops else ""]
    said = " and ".join(p for p in parts if p)
    if said:
        return f"This month there {'was' if severe + stops == 1 else 'were'} {said}."
    return f"No ★★★ alert and no UTM stop this month ({report.alert_count} {'alert' if report.alert_count == 1 else 'alerts'} in all)."


def _context(report: MonthlyReport, locale: str, now: datetime, tz: ZoneInfo, cids: dict[str, str]) -> dict[str, Any]:
    data, when = report.data, local_time(tz)
    month = data.month
    if locale == "ja":
        month_label = f"{month.year}年{month.month}月"
        period = f"{data.days[0].month}月{data.days[0].day}日〜{data.days[-1].month}月{data.days[-1].day}日"
    else:
        month_label = f"{MONTHS_EN[month.month - 1]} {month.year}"
        period = f"{data.days[0].isoformat()} to {data.days[-1].isoformat()}"
    totals = sorted(((sum(v.values()), d) for d, v in report.detections_by_day.items()), key=lambda x: (-x[0], x[1]))
    labels = CATEGORY_LABELS[locale]
    return {
        "kind": KIND, "tenant_name": one_line(data.tenant.name, 120), "now": when(now),
        "month_label": month_label, "period": period, "partial": report.partial, "day_count": len(data.days),
        "quiet": report.quiet, "headline": _headline(report, locale),
        "detections": report.detections, "blocked": report.blocked,
        "types": [{"label": LABELS[locale]["types"][t], "count": report.by_type[t]} for t in THREAT_TYPES],
        "peer_total": f"{report.peer_detections:.1f}" if report.peer_by_day else "-",
        "busiest": [{"day": f"{d.month}/{d.day}", "count": n} for n, d in totals[:BUSIEST_DAYS] if n],
        "categories": [{"label": labels.get(c) or event_text(c, 60), "count": n} for c, n in report.top_categories],
        "alert_count": report.alert_count, "grades": report.alerts_by_grade, "statuses": report.alerts_by_status,
        "severe": [{"title": event_text(a.title), "first_seen": when(a.first_seen),
                    "utm_id": one_line(a.utm_id, 100), "host_ip": one_line(a.host_ip) or "-",
                    "claim_open": a.claim_open, "insurance_until": when(a.insurance_until)} for a in report.severe],
        "utms": [{"utm_id": one_line(u.utm_id, 100),
                  "share": LABELS[locale]["never_seen"] if u.online_share is None else f"{u.online_share * 100:.1f}%",
                  "stops": u.stops, "offline": _duration(u.offline_seconds, locale)} for u in report.utms],
        "cid_detections": cids["detections"], "cid_availability": cids["availability"],
    }


def render_report(report: MonthlyReport, now: datetime, tz: ZoneInfo, sender: str = "mimamori@localhost") -> RenderedReport:
    data = report.data
    if not data.days:
        raise ValueError(f"tenant {data.tenant.tenant_id} was not in service in {data.month}")
    tenant, locale = data.tenant, locale_of(data.tenant)
    month = str(data.month)
    message_id = report_message_id(tenant.tenant_id, month)
    token = hashlib.blake2b(message_id.encode(), digest_size=8).hexdigest()
    cids = {name: f"{name}.{token}@mimamori" for name in ("detections", "availability")}
    pictures = {"detections": detections_chart(report, locale), "availability": availability_chart(report, locale)}
    context = _context(report, locale, now, tz, cids)
    text = render_template(locale, f"{KIND}.txt.j2", context)
    html = render_template(locale, f"{KIND}.html.j2", context)
    mail = compose(
        kind=KIND, tenant=tenant, subject=render_template(locale, "subject.j2", context),
        text=text, html=html, now=now, tz=tz, sender=sender, message_id=message_id,
        headers={"X-Mimamori-Month": month}, grade=None, alert_ids=(), utm_id=None,
        recipients=report_recipients(tenant), images={cids[name]: png for name, png in pictures.items()},
    )
    return RenderedReport(mail=mail, text=text, html=html, month=month,
                          images={f"{name}.png": png for name, png in pictures.items()})
