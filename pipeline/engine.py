"""The logic of the pipeline over plain data, shared by the Faust worker and `mimamori replay`.

`Detector` is everything keyed by UTM: validation, dedup, correlation and grading, signs of life
and UTM status. `MailDesk` is everything keyed by tenant: when alert mails go, and rendering every
mail. Neither reads a clock or touches Kafka: the caller passes `now` and carries the outputs.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from pipeline.config import Settings
from pipeline.correlate import AlertChange, Correlator
from pipeline.dedup import Deduper
from pipeline.heartbeat import Incident, MonitorResult, Notice, UtmMonitor, registry_mailable
from pipeline.ingest import EventValidator
from pipeline.mail.render import render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.mail.timing import MailScheduler
from pipeline.models import Alert, Event, Heartbeat, Mail, Registry, Rejection, Tenant, UtmStatusChange, Verdict
from pipeline.notices.windows import registry_windows
from pipeline.rules import Policy


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An accepted event as the store keeps it: its signal level (-1: none) and its alert."""

    event: Event
    signal: int
    alert_id: str


@dataclass
class Outputs:
    """What one step of the Detector produced, in the order it happened."""

    rejections: list[Rejection] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    alert_changes: list[AlertChange] = field(default_factory=list)
    status_changes: list[UtmStatusChange] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    ignored: int = 0
    unknown_verdicts: int = 0


class Detector:
    def __init__(self, settings: Settings, registry: Registry, policy: Policy, *, started_at: datetime,
                 deduper: Deduper | None = None, finished: MutableMapping[str, dict] | None = None) -> None:
        """`deduper` and `finished` (alerts that take no more events, kept for verdicts) may be
        backed by the worker's tables; by default they live in memory."""
        self.settings = settings
        self.registry = registry
        self.validator = EventValidator(registry)
        self.deduper = deduper or Deduper(settings.dedup_window)
        self.correlator = Correlator(
            policy, window=settings.correlation_window, tz=settings.tz, tenant_of=registry.tenant_of,
            finished=finished,
        )
        self.policy = policy
        self.monitor = UtmMonitor(
            timeout=settings.heartbeat_timeout, daily_at=settings.heartbeat_daily_at, tz=settings.tz,
            started_at=started_at, mailable=registry_mailable(registry), windows=registry_windows(registry),
        )

    def take(self, value: bytes, now: datetime, out: Outputs, *, kind: str = "event", topic: str = "",
             partition: int | None = None, offset: int | None = None) -> Event | Heartbeat | None:
        """Validate one raw record and, when accepted, apply it. Returns what was accepted."""
        check = {"event": self.validator.check_event, "heartbeat": self.validator.check_heartbeat,
                 "any": self.validator.check_record}[kind]
        checked = check(value, now, topic=topic or kind, partition=partition, offset=offset)
        if isinstance(checked, Rejection):
            out.rejections.append(checked)
            return None
        if checked is None:
            out.ignored += 1
            return None
        self.apply(checked, now, out)
        return checked

    def apply(self, record: Event | Heartbeat, now: datetime, out: Outputs) -> None:
        """Apply an accepted record; `now` is its arrival on the clock."""
        if isinstance(record, Heartbeat):
            tenant = self.registry.tenant_of(record.utm_id)
            self._life(record.utm_id, tenant.tenant_id if tenant else "", now, out)
            return
        event = record
        self._life(event.utm_id, event.tenant_id, now, out)  # a dropped duplicate is a sign of life too
        if self.deduper.is_duplicate(event.utm_id, event.event_id, now):
            out.duplicates += 1
            return
        signal = self.policy.signal(event)
        changes = self.correlator.process(event, now, signal)
        if not changes and self.correlator.is_late(event):
            out.late += 1
        alert_id = changes[-1].alert.alert_id if changes else ""
        out.events.append(StoredEvent(event, signal.level if signal else -1, alert_id))
        out.alert_changes.extend(changes)

    def _life(self, utm_id: str, tenant_id: str, now: datetime, out: Outputs) -> None:
        self._collect(self.monitor.sign_of_life(utm_id, tenant_id, now), out)

    def check(self, now: datetime, out: Outputs) -> None:
        self._collect(self.monitor.check(now), out)

    def apply_verdict(self, verdict: Verdict, now: datetime, out: Outputs) -> None:
        changes = self.correlator.apply_verdict(verdict, now)
        if not changes:
            out.unknown_verdicts += 1
        out.alert_changes.extend(changes)

    def expire(self, now: datetime) -> None:
        self.deduper.expire(now)
        self.correlator.expire(now)

    @staticmethod
    def _collect(result: MonitorResult, out: Outputs) -> None:
        out.status_changes.extend(result.status_changes)
        out.notices.extend(result.notices)
        out.incidents.extend(result.incidents)


class MailDesk:
    """Decides when each tenant's mails go and renders them."""

    def __init__(self, settings: Settings, tenant_of_id: Callable[[str], Tenant | None],
                 scheduler: MailScheduler | None = None) -> None:
        self.settings = settings
        self.tenant_of_id = tenant_of_id
        self.scheduler = scheduler or MailScheduler(
            settings.mail_group_wait, settings.mail_group_interval, settings.mail_urgent_wait,
        )

    def _mailable(self, tenant_id: str, moment: datetime) -> Tenant | None:
        """The tenant, if active and in contract on the local day of `moment`: the mail's time for
        UTM mails, the alert's latest event for alert mails (contract_end is judged by the event's
        day, so an alert of the last day is mailed even when its mail goes the day after)."""
        tenant = self.tenant_of_id(tenant_id)
        if tenant is None or not tenant.is_serviced_on(moment.astimezone(self.settings.tz).date()):
            return None
        return tenant

    def offer(self, change: AlertChange, now: datetime) -> list[Mail]:
        """An alert change. A verdict's report or re-grade is mailed at once, and then counts as the
        grade the customer was told; any other change waits for its group (new or raised grades).
        A change brought by an event after the contract's end is never mailed."""
        alert = change.alert
        tenant = self._mailable(alert.tenant_id, alert.last_seen)
        if change.verdict is None:
            if tenant is not None:
                self.scheduler.offer(alert, now)
            return []
        if tenant is None or not change.notice:
            return []
        self.scheduler.note_mailed(alert.tenant_id, alert.alert_id, alert.grade, now)
        return [render_verdict_mail(change.notice, tenant, alert, change.verdict, now, self.settings.tz,
                                    previous_grade=change.previous_grade)]

    def notice(self, notice: Notice, now: datetime) -> list[Mail]:
        if not notice.mailed:
            return []
        tenant = self._mailable(notice.tenant_id, now)
        if tenant is None:
            return []
        return [render_utm_mail(notice.kind, tenant, notice.utm_id, notice.offline_since, now, self.settings.tz)]

    def next_due(self) -> datetime | None:
        return self.scheduler.next_due()

    def due(self, now: datetime) -> list[Mail]:
        mails = []
        for tenant_id, alerts in self.scheduler.take_due(now):
            alerts = [a for a in alerts if self._mailable(tenant_id, a.last_seen)]
            tenant = self.tenant_of_id(tenant_id)
            if tenant is not None and alerts:
                mails.append(render_alert_mail(tenant, _highest_first(alerts), None, now, self.settings.tz))
        return mails


def _highest_first(alerts: list[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (-a.grade, a.first_seen, a.alert_id))
