"""Render customer mails from the jinja2 templates in templates/{ja,en}/ into RFC 5322 messages."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pipeline.addresses import is_plain_address
from pipeline.mail.text import defang, event_text, one_line, paragraph
from pipeline.models import GRADE_STARS, Alert, Event, Mail, Tenant, Verdict, iso
from pipeline.resources import TEMPLATES

__all__ = ["compose", "defang", "render_alert_mail", "render_utm_mail", "render_verdict_mail", "message_id_for", "LOCALES"]

LOCALES = ("ja", "en")
UTM_KINDS = ("utm-down", "utm-down-reminder", "utm-recovered")
VERDICT_KINDS = ("investigation-report", "regrade")
INVESTIGATING = "※調査中※"
MAX_RECIPIENTS = 3
EVIDENCE_PER_KIND = 5


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False, default=False),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def _locale(tenant: Tenant) -> str:
    return tenant.locale if tenant.locale in LOCALES else "ja"


def _render(locale: str, name: str, context: dict[str, Any]) -> str:
    return _environment().get_template(f"{locale}/{name}").render(**context)


def message_id_for(kind: str, tenant_id: str, identity: Iterable[str]) -> str:
    """`<kind.digest@mimamori>` from what the mail is about, so the same mail always has the same id."""
    digest = hashlib.blake2b("|".join((kind, tenant_id, *identity)).encode(), digest_size=16).hexdigest()
    return f"<{kind}.{digest}@mimamori>"


def stars(grade: int) -> str:
    return GRADE_STARS.get(grade, "") or INVESTIGATING


@dataclass(frozen=True)
class _Clock:
    tz: ZoneInfo

    def __call__(self, value: datetime | date | None) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S %Z")
        return value.isoformat()


def _distinct(values: Iterable[str | None], shape: Any) -> tuple[list[str], int]:
    seen: list[str] = []
    for value in values:
        text = one_line(shape(value)) if value else ""
        if text and text not in seen:
            seen.append(text)
    return seen[:EVIDENCE_PER_KIND], max(0, len(seen) - EVIDENCE_PER_KIND)


def _evidence(alert: Alert, events: list[Event]) -> dict[str, Any]:
    """What the events showed: from the events when the caller has them, else from the few values
    the alert carries."""
    if events:
        ordered = sorted(events, key=lambda e: (e.ts, e.event_id))
        raw = {name: [getattr(e, name) for e in ordered] for name in ("url", "domain", "file_name", "signature")}
    else:
        raw = {name: alert.evidence.get(name, []) for name in ("url", "domain", "file_name", "signature")}
    urls, more_urls = _distinct(raw["url"], lambda v: defang(event_text(v, 500)))
    domains, more_domains = _distinct(raw["domain"], lambda v: defang(event_text(v, 300)))
    files, more_files = _distinct(raw["file_name"], lambda v: event_text(v, 300))
    signatures, more_signatures = _distinct(raw["signature"], lambda v: event_text(v, 300))
    return {
        "urls": urls, "domains": domains, "file_names": files, "signatures": signatures,
        "more": more_urls + more_domains + more_files + more_signatures,
    }


def _alert_view(alert: Alert, events: list[Event], when: _Clock) -> dict[str, Any]:
    return {
        "alert_id": one_line(alert.alert_id), "grade": alert.grade, "stars": stars(alert.grade),
        "title": event_text(alert.title), "utm_id": one_line(alert.utm_id),
        "host_ip": one_line(alert.host_ip) or "-", "host_mac": one_line(alert.host_mac) or "-",
        "categories": ", ".join(event_text(c, 40) for c in alert.categories) or "-",
        "first_seen": when(alert.first_seen), "last_seen": when(alert.last_seen),
        "event_count": alert.event_count, "status": alert.status,
        "insurance_until": when(alert.insurance_eligible_until) if alert.insurance_eligible_until else None,
        **_evidence(alert, events),
    }


def _compose(
    *, kind: str, tenant: Tenant, subject: str, text: str, html: str | None, now: datetime, tz: ZoneInfo,
    sender: str, message_id: str, headers: dict[str, str], grade: int | None, alert_ids: tuple[str, ...],
    utm_id: str | None, recipients: tuple[str, ...] | None = None, images: dict[str, bytes] | None = None,
) -> Mail:
    """`recipients` default to the tenant's alert addresses (`notify_emails`); `images` (Content-ID -> PNG)
    go with the HTML part."""
    addresses = tenant.notify_emails if recipients is None else recipients
    # only plain `local@domain` addresses: a display name or a control character could redirect
    # the mail (`Boss<attacker@evil.example>`), whatever let the record in
    to = tuple(address for address in addresses if is_plain_address(address))[:MAX_RECIPIENTS]
    ascii_only = all(address.isascii() for address in (*to, sender))
    message = EmailMessage(policy=SMTP if ascii_only else SMTPUTF8)
    subject = one_line(subject, 250)
    message["From"] = one_line(sender, 254)
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(now.astimezone(tz))
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["X-Mimamori-Kind"] = kind
    message["X-Mimamori-Tenant"] = one_line(tenant.tenant_id, 100)
    for name, value in headers.items():
        message[name] = one_line(value, 2000)
    message.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
        html_part = message.get_payload()[-1]
        for cid, png in (images or {}).items():
            html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>",
                                  filename=f"{cid.split('@')[0]}.png")
    return Mail(
        message_id=message_id, kind=kind, tenant_id=tenant.tenant_id, to=to, subject=subject, grade=grade,
        alert_ids=alert_ids, utm_id=utm_id, sent_at=now, raw=message.as_string(),
    )


def compose(**kwargs: Any) -> Mail:
    """The house envelope (From, To, Date, Message-ID, X-Mimamori-*) for mails rendered elsewhere."""
    return _compose(**kwargs)


def render_template(locale: str, name: str, context: dict[str, Any]) -> str:
    return _render(locale, name, context)


def locale_of(tenant: Tenant) -> str:
    return _locale(tenant)


def local_time(tz: ZoneInfo) -> Any:
    """`when(value)`: a time as the mails print it, in `tz`."""
    return _Clock(tz)


def _base_context(tenant: Tenant, now: datetime, when: _Clock) -> dict[str, Any]:
    return {"tenant_name": one_line(tenant.name, 120), "now": when(now)}


def render_alert_mail(
    tenant: Tenant, alerts: list[Alert], events: dict[str, list[Event]] | None, now: datetime, tz: ZoneInfo,
    sender: str = "mimamori@localhost",
) -> Mail:
    if not alerts:
        raise ValueError("an alert mail needs at least one alert")
    if any(a.tenant_id != tenant.tenant_id for a in alerts):
        raise ValueError("an alert mail carries the alerts of its own tenant only")
    events = events or {}
    when = _Clock(tz)
    ordered = sorted(alerts, key=lambda a: (-a.grade, a.first_seen, a.alert_id))
    top = ordered[0].grade
    views = [_alert_view(a, events.get(a.alert_id, []), when) for a in ordered]
    context = {
        **_base_context(tenant, now, when), "kind": "alert", "alerts": views, "count": len(views),
        "top_grade": top, "top_stars": stars(top), "all_investigating": top == 0,
    }
    locale = _locale(tenant)
    alert_ids = tuple(a.alert_id for a in ordered)
    identity = [f"{a.alert_id}:{a.grade}" for a in sorted(ordered, key=lambda a: a.alert_id)]
    return _compose(
        kind="alert", tenant=tenant, subject=_render(locale, "subject.j2", context),
        text=_render(locale, "alert.txt.j2", context), html=_render(locale, "alert.html.j2", context),
        now=now, tz=tz, sender=sender, message_id=message_id_for("alert", tenant.tenant_id, identity),
        headers={"X-Mimamori-Grade": str(top), "X-Mimamori-Alerts": ", ".join(alert_ids)},
        grade=top, alert_ids=alert_ids, utm_id=None,
    )


def render_utm_mail(
    kind: str, tenant: Tenant, utm_id: str, since: datetime | None, now: datetime, tz: ZoneInfo,
    sender: str = "mimamori@localhost",
) -> Mail:
    """`since` is when the UTM went silent (for `utm-recovered`: the outage it came back from)."""
    if kind not in UTM_KINDS:
        raise ValueError(f"not a UTM mail kind: {kind!r}")
    when = _Clock(tz)
    context = {
        **_base_context(tenant, now, when), "kind": kind, "utm_id": one_line(utm_id, 100),
        "since": when(since) if since else None,
    }
    identity = [utm_id, iso(since or now) or ""]
    if kind == "utm-down-reminder":
        identity.append(now.astimezone(tz).date().isoformat())
    locale = _locale(tenant)
    return _compose(
        kind=kind, tenant=tenant, subject=_render(locale, "subject.j2", context),
        text=_render(locale, f"{kind}.txt.j2", context), html=None, now=now, tz=tz, sender=sender,
        message_id=message_id_for(kind, tenant.tenant_id, identity), headers={"X-Mimamori-Utm": utm_id},
        grade=None, alert_ids=(), utm_id=utm_id,
    )


def render_verdict_mail(
    kind: str, tenant: Tenant, alert: Alert, verdict: Verdict, now: datetime, tz: ZoneInfo,
    sender: str = "mimamori@localhost", previous_grade: int | None = None,
) -> Mail:
    """`verdict.grade` is the alert's grade from now on; `previous_grade` (default `alert.grade`) the one
    the customer knew. Pass the alert as updated by the verdict so its insurance deadline shows."""
    if kind not in VERDICT_KINDS:
        raise ValueError(f"not a verdict mail kind: {kind!r}")
    when = _Clock(tz)
    before = alert.grade if previous_grade is None else previous_grade
    context = {
        **_base_context(tenant, now, when), "kind": kind, "alert": _alert_view(alert, [], when),
        "previous_grade": before, "previous_stars": stars(before),
        "grade": verdict.grade, "grade_stars": stars(verdict.grade), "note": paragraph(verdict.note),
        "insurance_until": when(alert.insurance_eligible_until) if alert.insurance_eligible_until else None,
        "top_grade": verdict.grade, "top_stars": stars(verdict.grade),
    }
    locale = _locale(tenant)
    identity = [alert.alert_id, str(verdict.grade), iso(verdict.ts) or ""]
    return _compose(
        kind=kind, tenant=tenant, subject=_render(locale, "subject.j2", context),
        text=_render(locale, f"{kind}.txt.j2", context), html=None, now=now, tz=tz, sender=sender,
        message_id=message_id_for(kind, tenant.tenant_id, identity),
        headers={"X-Mimamori-Grade": str(verdict.grade), "X-Mimamori-Alerts": alert.alert_id},
        grade=verdict.grade, alert_ids=(alert.alert_id,), utm_id=None,
    )
