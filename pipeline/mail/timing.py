"""Mail timing per tenant (CONTRACT.md, "Mail timing"), in the style of Alertmanager's aggregation group.

Pure: the clock is always passed in, so every timeline is a unit test.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, TypeVar

from pipeline.models import Alert, iso, parse_time

# An alert's mailed grade is forgotten this long after its last mail: alerts stop taking events after
# 24 h plus the correlation window, so nothing can raise them any more.
DEFAULT_MEMORY = timedelta(days=3)

T = TypeVar("T")
MAX_ALERTS_PER_MAIL = 100
"""CONTRACT.md, "Mail": a mail lists at most this many alerts; more pending at that moment go in
further mails at the same time, highest grade first."""


def mail_order(alert: Alert, arrival: datetime) -> tuple[int, datetime, str]:
    """The order alerts are taken in (highest grade, then earliest arrival), so the split is the
    same whenever the same pending alerts are taken again: the same mails, the same Message-IDs."""
    return (-alert.grade, arrival, alert.alert_id)


def split_for_mails(alerts: list[T], limit: int = MAX_ALERTS_PER_MAIL) -> list[list[T]]:
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

    Saved as bounded records: a head (`head_state`: the last mail), one record per pending alert
    (`drain_pending`) and one per mailed grade (`drain_mailed`), because a tenant may have thousands
    of alerts pending or mailed at once (3,001 pending were a 7 MB record). `to_state` gives it
    whole, for tests.

    Every operation is linear in the alerts it touches, not in the alerts held: the earliest
    arrival (and earliest ★★★ arrival) of the pending alerts and the oldest mailed grade are the
    tops of heaps, their stale entries dropped when they reach the top (a tenant with 10,000
    pending alerts asked for its due time at every record made replay quadratic)."""

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
        self.mailed_changed: set[str] = set()
        """Mailed grades set or forgotten since `drain_mailed`."""
        self._arrivals: list[tuple[datetime, str]] = []  # heap of (arrival, alert_id), stale entries allowed
        self._urgent: list[tuple[datetime, str]] = []  # the same, of pending alerts once of grade 3
        self._mailed_at: list[tuple[datetime, str]] = []  # heap of (mailed at, alert_id)

    def _wait(self, waiting: PendingAlert) -> None:
        self.pending[waiting.alert.alert_id] = waiting
        heapq.heappush(self._arrivals, (waiting.arrival, waiting.alert.alert_id))
        if waiting.alert.grade >= 3:
            heapq.heappush(self._urgent, (waiting.arrival, waiting.alert.alert_id))
        if len(self._arrivals) > 2 * len(self.pending) + 64:  # many withdrawn: start the heaps afresh
            self._arrivals = [(w.arrival, a) for a, w in self.pending.items()]
            self._urgent = [(w.arrival, a) for a, w in self.pending.items() if w.alert.grade >= 3]
            heapq.heapify(self._arrivals)
            heapq.heapify(self._urgent)

    def _remember(self, alert_id: str, grade: int, at: datetime) -> None:
        self.mailed[alert_id] = (grade, at)
        self.mailed_changed.add(alert_id)
        heapq.heappush(self._mailed_at, (at, alert_id))

    def offer(self, alert: Alert, now: datetime) -> bool:
        """Take a new version of an alert; returns whether it is (now) waiting for a mail."""
        waiting = self.pending.get(alert.alert_id)
        if waiting is not None:
            if alert.version >= waiting.alert.version:
                if alert.grade >= 3 > waiting.alert.grade:
                    heapq.heappush(self._urgent, (waiting.arrival, alert.alert_id))
                waiting.alert = alert
                self.changed.add(alert.alert_id)
            return True
        if alert.status == "closed":
            return False
        mailed = self.mailed.get(alert.alert_id)
        if mailed is not None and alert.grade <= mailed[0]:
            return False
        self._wait(PendingAlert(alert, now))
        self.changed.add(alert.alert_id)
        return True

    def note_mailed(self, alert_id: str, grade: int, now: datetime) -> None:
        """Another mail (an analyst's re-grade or investigation report) told the customer this grade.

        The alert is then mailed again only if its grade later rises above it; an alert mail of this
        grade or less still pending for it is withdrawn.
        """
        self._remember(alert_id, grade, now)
        waiting = self.pending.get(alert_id)
        if waiting is not None and waiting.alert.grade <= grade:
            del self.pending[alert_id]
            self.changed.add(alert_id)

    def _earliest(self, heap: list[tuple[datetime, str]], urgent: bool) -> datetime | None:
        """The arrival at the top of `heap` once entries no longer pending (or no longer ★★★) are dropped."""
        while heap:
            arrival, alert_id = heap[0]
            waiting = self.pending.get(alert_id)
            if waiting is not None and waiting.arrival == arrival and (not urgent or waiting.alert.grade >= 3):
                return arrival
            heapq.heappop(heap)
        return None

    def due_at(self) -> datetime | None:
        """The earliest due time of the pending alerts: max(earliest arrival + group wait, last mail
        + group interval), or earlier, the earliest ★★★ arrival + urgent wait (each alert's due time
        grows with its arrival, so the earliest arrivals decide)."""
        if not self.pending:
            return None
        first = self._earliest(self._arrivals, urgent=False)
        assert first is not None
        due = first + self.group_wait
        if self.last_mail_at is not None:
            due = max(due, self.last_mail_at + self.group_interval)
        urgent = self._earliest(self._urgent, urgent=True)
        if urgent is not None:
            due = min(due, urgent + self.urgent_wait)
        return due

    def take_due(self, now: datetime) -> list[Alert] | None:
        """Every pending alert (latest versions) if the first one is due at or before now, else None."""
        taken = self.take_due_pending(now)
        return None if taken is None else [waiting.alert for waiting in taken]

    def take_due_pending(self, now: datetime) -> list[PendingAlert] | None:
        """`take_due` with each alert's arrival."""
        due = self.due_at()
        if due is None or due > now:
            return None
        taken = sorted(self.pending.values(), key=lambda w: mail_order(w.alert, w.arrival))
        self.changed.update(self.pending)
        self.pending.clear()
        self._arrivals.clear()
        self._urgent.clear()
        self._forget(now)
        for waiting in taken:
            self._remember(waiting.alert.alert_id, waiting.alert.grade, now)
        self.last_mail_at = now
        return taken

    def _forget(self, now: datetime) -> None:
        horizon = now - self.memory
        heap = self._mailed_at
        while heap and heap[0][0] < horizon:
            at, alert_id = heapq.heappop(heap)
            mailed = self.mailed.get(alert_id)
            if mailed is not None and mailed[1] == at:
                del self.mailed[alert_id]
                self.mailed_changed.add(alert_id)

    def is_idle(self) -> bool:
        """Nothing pending and nothing remembered: the mail desk forgets the tenant (and removes its saved head)."""
        return not self.pending and not self.mailed

    def to_state(self) -> dict[str, Any]:
        return {
            "pending": [{"alert": w.alert.to_record(), "arrival": iso(w.arrival)} for w in self.pending.values()],
            "mailed": {alert_id: [grade, iso(at)] for alert_id, (grade, at) in self.mailed.items()},
            "last_mail_at": iso(self.last_mail_at),
        }

    def head_state(self) -> dict[str, Any]:
        """The schedule without its pending alerts and mailed grades (records of their own)."""
        return {"last_mail_at": iso(self.last_mail_at)}

    def drain_pending(self) -> list[tuple[str, dict[str, Any] | None]]:
        """(alert_id, record or None when no longer pending) of each pending alert changed since
        the last call."""
        out = [(alert_id, self._pending_record(alert_id)) for alert_id in sorted(self.changed)]
        self.changed.clear()
        return out

    def drain_mailed(self) -> list[tuple[str, list[Any] | None]]:
        """(alert_id, [grade, mailed at] or None when forgotten) of each mailed grade changed since
        the last call."""
        out = []
        for alert_id in sorted(self.mailed_changed):
            mailed = self.mailed.get(alert_id)
            out.append((alert_id, None if mailed is None else [mailed[0], iso(mailed[1])]))
        self.mailed_changed.clear()
        return out

    def _pending_record(self, alert_id: str) -> dict[str, Any] | None:
        waiting = self.pending.get(alert_id)
        return None if waiting is None else {"alert": waiting.alert.to_record(), "arrival": iso(waiting.arrival)}

    def load_head(self, state: dict[str, Any]) -> None:
        """A head (`head_state`), or one saved before pending alerts and mailed grades were saved
        one by one (a whole state, or a head with every mailed grade): those are then saved again
        one by one at the next drain."""
        for item in state.get("pending", ()):
            self.load_pending(item)
            self.changed.add(item["alert"]["alert_id"])
        for alert_id, value in state.get("mailed", {}).items():
            if alert_id not in self.mailed:
                self.load_mailed(alert_id, value)
                self.mailed_changed.add(alert_id)
        last = state.get("last_mail_at")
        self.last_mail_at = parse_time(last) if last else None

    def load_pending(self, item: dict[str, Any]) -> None:
        alert = Alert.from_record(item["alert"])
        self._wait(PendingAlert(alert, parse_time(item["arrival"])))

    def load_mailed(self, alert_id: str, value: list[Any]) -> None:
        grade, at = int(value[0]), parse_time(value[1])
        self.mailed[alert_id] = (grade, at)
        heapq.heappush(self._mailed_at, (at, alert_id))

    @classmethod
    def from_state(
        cls, state: dict[str, Any], group_wait: timedelta, group_interval: timedelta, urgent_wait: timedelta,
        memory: timedelta = DEFAULT_MEMORY,
    ) -> "TenantMailSchedule":
        schedule = cls(group_wait, group_interval, urgent_wait, memory)
        for item in state.get("pending", ()):
            schedule.load_pending(item)
        for alert_id, value in state.get("mailed", {}).items():
            schedule.load_mailed(alert_id, value)
        last = state.get("last_mail_at")
        schedule.last_mail_at = parse_time(last) if last else None
        return schedule


class MailScheduler:
    """One schedule per tenant (a MailDesk's, in the worker and in replay); tenants are never mixed in one mail."""

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

    def next_due(self, tenants: Iterable[str] | None = None) -> datetime | None:
        """The earliest due time of all tenants, or of only those named."""
        schedules = self.tenants.values() if tenants is None else filter(None, map(self.tenants.get, tenants))
        dues = [due for due in (s.due_at() for s in schedules) if due is not None]
        return min(dues, default=None)

    def take_due(self, now: datetime) -> list[tuple[str, list[Alert]]]:
        """The alerts due at or before now, one entry per tenant (highest grade first: cut them into
        mails with `split_for_mails`), earliest due first (then by tenant id).

        Every mail is recorded as sent at `now`: replay should call this at each `next_due()` in turn
        so that each mail carries its own time.
        """
        return [(tenant_id, [w.alert for w in taken]) for tenant_id, taken in self.take_due_pending(now)]

    def take_due_pending(self, now: datetime) -> list[tuple[str, list[PendingAlert]]]:
        """`take_due` with each alert's arrival."""
        due = sorted((at, tenant_id) for tenant_id, s in self.tenants.items()
                     if (at := s.due_at()) is not None and at <= now)
        mails: list[tuple[str, list[PendingAlert]]] = []
        for _, tenant_id in due:
            taken = self.tenants[tenant_id].take_due_pending(now)
            if taken:
                mails.append((tenant_id, taken))
        return mails
