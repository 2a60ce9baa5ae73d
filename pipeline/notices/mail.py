"""The mails of a notice version: one per concerned tenant, to its administrators (pure)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.mail.render import compose, locale_of, local_time, message_id_for, render_template
from pipeline.mail.text import one_line, paragraph
from pipeline.models import Mail, Registry, Tenant
from pipeline.notices.audience import concerned_tenants
from pipeline.notices.model import CANCELLED_KIND, ServiceNotice


def mail_kind(notice: ServiceNotice) -> str:
    return CANCELLED_KIND if notice.cancelled else notice.kind


def is_stale(notice: ServiceNotice, now: datetime) -> bool:
    """A version read after its window ended (a worker that was down for long) is not mailed."""
    return notice.ends_at is not None and notice.ends_at <= now


def notice_recipients(notice: ServiceNotice, registry: Registry, now: datetime, tz: ZoneInfo) -> list[Tenant]:
    """The tenants this version is mailed to. A cancellation goes to the tenants the notice
    concerned, which are those that got it when it was mailed; nobody for a notice never mailed
    (a level Z fault, a portal-only firmware notice)."""
    if not notice.mailed or is_stale(notice, now):
        return []
    return concerned_tenants(notice.audience, registry, now.astimezone(tz).date())


def render_notice_mail(notice: ServiceNotice, tenant: Tenant, now: datetime, tz: ZoneInfo,
                       sender: str = "mimamori@localhost") -> Mail:
    """Message-ID from notice id, version and tenant: a version re-rendered after a restart is the
    same mail, which the sender's ledger drops."""
    kind = mail_kind(notice)
    when = local_time(tz)
    locale = locale_of(tenant)
    context = {
        "tenant_name": one_line(tenant.name, 120), "now": when(now), "kind": kind,
        "notice_id": notice.notice_id, "version": notice.version, "update": notice.version > 1,
        "title": one_line(notice.title_in(locale), 150), "body": paragraph(notice.body_in(locale)),
        "level": notice.level, "short_notice": notice.short_notice,
        "starts_at": when(notice.starts_at) if notice.starts_at else None,
        "ends_at": when(notice.ends_at) if notice.ends_at else None,
    }
    template = "notice-cancelled.txt.j2" if notice.cancelled else "notice.txt.j2"
    return compose(
        kind=kind, tenant=tenant, subject=render_template(locale, "subject.j2", context),
        text=render_template(locale, template, context), html=None, now=now, tz=tz, sender=sender,
        message_id=message_id_for(kind, tenant.tenant_id, [notice.notice_id, str(notice.version)]),
        headers={"X-Mimamori-Notice": f"{notice.notice_id}; version={notice.version}"},
        grade=None, alert_ids=(), utm_id=None, recipients=tenant.notice_emails,
    )


def notice_mails(notice: ServiceNotice, registry: Registry, now: datetime, tz: ZoneInfo,
                 sender: str = "mimamori@localhost") -> list[Mail]:
    return [render_notice_mail(notice, t, now, tz, sender) for t in notice_recipients(notice, registry, now, tz)]
