"""Mail timing per tenant (CONTRACT.md, "Mail timing"), in the style of Alertmanager's aggregation group.

Pure: the clock is always passed in, so every timeline is a unit test.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.models import Alert, iso, parse_time

# An alert's mailed grade is forgotten this long after its last mail: alerts stop taking events after
# 24 h plus the correlation window, so nothing can raise them any more.
DEFAULT_MEMORY = timedelta(days=3)

MAX_ALERTS_PER_MAIL = 100
"""CONTRACT.md, "Mail": a mail lists at most this many alerts; more pending at that moment go in
further mails at the same time, highest grade first."""


def mail_order(alert: Alert, arrival: datetime) -> tuple[int, datetime, str]:
    """The order alerts are taken in (highest grade, then earliest arrival), so the split is the
    same whenever the same pending alerts are taken again: the same mails, the same Message-IDs."""
    return (-alert.grade, arrival, alert.alert_id)


def split_for_mails(alerts: list[Alert], limit: int = MAX_ALERTS_PER_MAIL) -> list[list[Alert]]:
    """Alerts already in `mail_order`, cut into mails of at most `limit`: the first mail carries the
    highest grades."""
    if limit < 1:
        raise ValueError(f"a mail carries at least one alert, got a limit of {limit}")
    return [alerts[start:start + limit] for start in range(0, len(alerts), limit)]


@dataclass(slots=True)
class PendingAlert:
    alert: Alert
    arrival: datetime


class TenantMailSchedule:
    """The pending alerts of one tenant, what was mailed at which grade, and when the last mail went.

    Saved as bounded records: a head (`head_state`: mailed grades, last mail) and one record per
    pending alert (`drain_pending`), because a tenant may have thousands of alerts pending at once
    (3,001 were a 7 MB record). `to_state` gives it whole, for tests and replay."""

    def __init__(
        self, group_wait: timedelta, group_interval: timedelta, urgent_wait: timedelta,
        memory: timedelta = DEFAULT_MEMORY,
    ) -> None:
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.urgent_wait = urgent_wait
        self.memory = memory
        self.pending: dict[str, PendingAlert] = {}
        self.mailed: dict[str, tuple[int, datetime]] = {}
        self.last_mail_at: datetime | None = None
        self.changed: set[str] = set()
        """Pending alerts added, updated or removed since `drain_pending`."""

    def offer(self, alert: Alert, now: datetime) -> bool:
        """Take a new version of an alert; returns whether it is (now) waiting for a mail."""
        waiting = self.pending.get(alert.alert_id)
        if waiting is not None:
            if alert.version >= waiting.alert.version:
                waiting.alert = alert
                self.changed.add(alert.alert_id)
            return True
        if alert.status == "closed":
            return False
        mailed = self.mailed.get(alert.alert_id)
        if mailed is not None and alert.grade <= mailed[0]:
            return False
        self.pending[alert.alert_id] = PendingAlert(alert, now)
        self.changed.add(alert.alert_id)
        return True

    def note_mailed(self, alert_id: str, grade: int, now: datetime) -> None:
        """Another mail (an analyst's re-grade or investigation report) told the customer this grade.

        The alert is then mailed again only if its grade later rises above it; an alert mail of this
        grade or less still pending for it is withdrawn.
        """
        self.mailed[alert_id] = (grade, now)
        waiting = self.pending.get(alert_id)
        if waiting is not None and waiting.alert.grade <= grade:
            del self.pending[alert_id]
            self.changed.add(alert_id)

    def _due(self, waiting: PendingAlert) -> datetime:
        due = waiting.arrival + self.group_wait
        if self.last_mail_at is not None:
            due = max(due, self.last_mail_at + self.group_interval)
        if waiting.alert.grade >= 3:
            due = min(due, waiting.arrival + self.urgent_wait)
        return due

    def due_at(self) -> datetime | None:
        if not self.pending:
            return None
        return min(self._due(waiting) for waiting in self.pending.values())

    def take_due(self, now: datetime) -> list[Alert] | None:
        """Every pending alert (latest versions) if the first one is due at or before now, else None."""
        due = self.due_at()
        if due is None or due > now:
            return None
        taken = sorted(self.pending.values(), key=lambda w: mail_order(w.alert, w.arrival))
        self.changed.update(self.pending)
        self.pending.clear()
        self._forget(now)
        for waiting in taken:
            self.mailed[waiting.alert.alert_id] = (waiting.alert.grade, now)
        self.last_mail_at = now
        return [waiting.alert for waiting in taken]

    def _forget(self, now: datetime) -> None:
        horizon = now - self.memory
        for alert_id in [a for a, (_, at) in self.mailed.items() if at < horizon]:
            del self.mailed[alert_id]

    def is_idle(self) -> bool:
        """Nothing pending and nothing remembered: the worker may drop this tenant's table entry."""
        return not self.pending and not self.mailed

    def to_state(self) -> dict[str, Any]:
        return {
            "pending": [{"alert": w.alert.to_record(), "arrival": iso(w.arrival)} for w in self.pending.values()],
            "mailed": {alert_id: [grade, iso(at)] for alert_id, (grade, at) in self.mailed.items()},
            "last_mail_at": iso(self.last_mail_at),
        }

    def head_state(self) -> dict[str, Any]:
        """The schedule without its pending alerts."""
        return {
            "mailed": {alert_id: [grade, iso(at)] for alert_id, (grade, at) in self.mailed.items()},
            "last_mail_at": iso(self.last_mail_at),
        }

    def drain_pending(self) -> list[tuple[str, dict[str, Any] | None]]:
        """(alert_id, record or None when no longer pending) of each pending alert changed since
        the last call."""
        out = [(alert_id, self._pending_record(alert_id)) for alert_id in sorted(self.changed)]
        self.changed.clear()
        return out

    def _pending_record(self, alert_id: str) -> dict[str, Any] | None:
        waiting = self.pending.get(alert_id)
        return None if waiting is None else {"alert": waiting.alert.to_record(), "arrival": iso(waiting.arrival)}

    def load_head(self, state: dict[str, Any]) -> None:
        """A head (`head_state`), or a whole state saved before pending alerts were saved one by
        one: its pending alerts are then saved again one by one at the next drain."""
        for item in state.get("pending", ()):
            self.load_pending(item)
            self.changed.add(item["alert"]["alert_id"])
        self.mailed = {a: (int(g), parse_time(at)) for a, (g, at) in state.get("mailed", {}).items()}
        last = state.get("last_mail_at")
        self.last_mail_at = parse_time(last) if last else None

    def load_pending(self, item: dict[str, Any]) -> None:
        alert = Alert.from_record(item["alert"])
        self.pending[alert.alert_id] = PendingAlert(alert, parse_time(item["arrival"]))

    @classmethod
    def from_state(
        cls, state: dict[str, Any], group_wait: timedelta, group_interval: timedelta, urgent_wait: timedelta,
        memory: timedelta = DEFAULT_MEMORY,
    ) -> "TenantMailSchedule":
        schedule = cls(group_wait, group_interval, urgent_wait, memory)
        for item in state.get("pending", ()):
            alert = Alert.from_record(item["alert"])
            schedule.pending[alert.alert_id] = PendingAlert(alert, parse_time(item["arrival"]))
        schedule.mailed = {a: (int(g), parse_time(at)) for a, (g, at) in state.get("mailed", {}).items()}
        last = state.get("last_mail_at")
        schedule.last_mail_at = parse_time(last) if last else None
        return schedule


class MailScheduler:
    """One schedule per tenant, for replay; tenants are never mixed in one mail."""

    def __init__(
        self, group_wait: timedelta, group_interval: timedelta, urgent_wait: timedelta,
        memory: timedelta = DEFAULT_MEMORY,
    ) -> None:
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.urgent_wait = urgent_wait
        self.memory = memory
        self.tenants: dict[str, TenantMailSchedule] = {}

    def schedule_of(self, tenant_id: str) -> TenantMailSchedule:
        schedule = self.tenants.get(tenant_id)
        if schedule is None:
            schedule = TenantMailSchedule(self.group_wait, self.group_interval, self.urgent_wait, self.memory)
            self.tenants[tenant_id] = schedule
        return schedule

    def offer(self, alert: Alert, now: datetime) -> bool:
        return self.schedule_of(alert.tenant_id).offer(alert, now)

    def note_mailed(self, tenant_id: str, alert_id: str, grade: int, now: datetime) -> None:
        self.schedule_of(tenant_id).note_mailed(alert_id, grade, now)

    def next_due(self) -> datetime | None:
        dues = [due for due in (s.due_at() for s in self.tenants.values()) if due is not None]
        return min(dues, default=None)

    def take_due(self, now: datetime) -> list[tuple[str, list[Alert]]]:
        """The alerts due at or before now, one entry per tenant (highest grade first: cut them into
        mails with `split_for_mails`), earliest due first (then by tenant id).

        Every mail is recorded as sent at `now`: replay should call this at each `next_due()` in turn
        so that each mail carries its own time.
        """
        due = sorted(
            (s.due_at(), tenant_id) for tenant_id, s in self.tenants.items()
            if s.due_at() is not None and s.due_at() <= now  # type: ignore[operator]
        )
        mails: list[tuple[str, list[Alert]]] = []
        for _, tenant_id in due:
            alerts = self.tenants[tenant_id].take_due(now)
            if alerts:
                mails.append((tenant_id, alerts))
        return mails
