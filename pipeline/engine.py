"""The logic of the pipeline over plain data, shared by the worker's processors and `mimamori replay`.

`Detector` is everything keyed by UTM: validation, dedup, correlation and grading, signs of life
and UTM status. `MailDesk` is everything keyed by tenant: when alert mails go, and rendering every
mail. Neither reads a clock or touches Kafka: the caller passes `now` and carries the outputs.
"""
from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, NamedTuple

import orjson

from pipeline.config import Settings
from pipeline.correlate import AlertChange, Correlator
from pipeline.dedup import Deduper
from pipeline.heartbeat import NOWHERE, Incident, MonitorResult, Share, UtmMonitor, registry_mailable
from pipeline.ingest import EventValidator
from pipeline.ingest.validator import rejected
from pipeline.mail.render import render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.mail.timing import MAX_ALERTS_PER_MAIL, MailScheduler, split_for_mails
from pipeline.models import Alert, Event, Heartbeat, Mail, Notice, Registry, Rejection, Tenant, UtmStatusChange, Verdict, iso
from pipeline.notices.windows import registry_windows
from pipeline.mail.requests import MailRequest, mail_requests
from pipeline.mail.timing import TenantMailSchedule
from pipeline.rules import Policy
from pipeline.rows import alert_row, event_row, event_row_json, row_json, status_row
from pipeline.step import MailStep, RecordingDict, StateChanges, coalesced, state_key

MONITOR_KEY = state_key("", "monitor")


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
    signs_of_life: list[tuple[str, str, datetime]] = field(default_factory=list)  # (utm_id, tenant_id, last_seen)
    duplicates: int = 0
    late: int = 0
    ignored: int = 0
    unknown_verdicts: int = 0


class InputRecord(NamedTuple):
    """One raw input of the UTM side: `kind` is `event`, `heartbeat` or `verdict`; where it came from
    names it in rejections. (A named tuple: one is made per record, 0.4 us where a frozen
    dataclass took 1.3.)"""

    kind: str
    value: bytes
    topic: str = ""
    partition: int | None = None
    offset: int | None = None


@dataclass
class DetectorStep:
    """Everything a step of the Detector asks its driver to do."""

    outputs: Outputs
    state: StateChanges

    @property
    def alert_versions(self) -> list[AlertChange]:
        """The alert versions to publish on `alerts` (the one publishing rule)."""
        return coalesced(self.outputs.alert_changes)

    @property
    def mail_requests(self) -> list[MailRequest]:
        return mail_requests(self.alert_versions, self.outputs.notices)

    @property
    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The store's rows of this step, by table: every accepted event, the last version of each
        alert that changed, status changes and signs of life."""
        out = self.outputs
        return {"events": [event_row(s.event, None if s.signal < 0 else s.signal, s.alert_id) for s in out.events],
                **self._other_rows()}

    @property
    def row_texts(self) -> dict[str, list[bytes]]:
        """`rows` as each row's JSON text (`ROW_JSON`), what the store-rows topic carries: the event
        rows written straight from the typed events (`event_row_json`, no dict per row)."""
        texts = {"events": [event_row_json(s.event, s.signal, s.alert_id) for s in self.outputs.events]}
        for table, rows in self._other_rows().items():
            texts[table] = [row_json(row) for row in rows]
        return texts

    def _other_rows(self) -> dict[str, list[dict[str, Any]]]:
        out = self.outputs
        latest = {change.alert.alert_id: change.alert for change in out.alert_changes}
        return {
            "alerts": [alert_row(alert) for alert in latest.values()],
            "utm_status": [status_row(change) for change in out.status_changes],
            "utm_last_seen": [{"tenant_id": tenant_id, "utm_id": utm_id, "last_seen": iso(last_seen)}
                              for utm_id, tenant_id, last_seen in out.signs_of_life],
        }


class Detector:
    def __init__(self, settings: Settings, registry: Registry, policy: Policy, *, started_at: datetime,
                 deduper: Deduper | None = None, finished: MutableMapping[str, dict] | None = None,
                 elsewhere: Callable[[], Share] = lambda: NOWHERE) -> None:
        """`deduper` and `finished` (alerts that take no more events, kept for verdicts) may be
        given; by default they live in memory. `elsewhere` tells the mass-outage guard how many
        UTMs other detectors (other partitions) see silent, of how many, counted up to when."""
        self.settings = settings
        self.registry = registry
        self.validator = EventValidator(registry)
        self.deduper = deduper if deduper is not None else Deduper(settings.dedup_window)
        self._finished = RecordingDict() if finished is None else finished
        self._finished_utm: dict[str, str] = {}
        self.correlator = Correlator(
            policy, window=settings.correlation_window, tz=settings.tz, tenant_of=registry.tenant_of,
            finished=self._finished,
        )
        self.policy = policy
        self.monitor = UtmMonitor(
            timeout=settings.heartbeat_timeout, daily_at=settings.heartbeat_daily_at, tz=settings.tz,
            started_at=started_at, mailable=registry_mailable(registry), windows=registry_windows(registry),
            elsewhere=elsewhere,
        )

    # --- one record of a step (the outputs gather in `out`) -----------------------------------

    def _take(self, record: InputRecord, now: datetime, out: Outputs) -> Event | Heartbeat | None:
        """Validate a raw event or heartbeat and, when accepted, apply it. Returns what was accepted."""
        kind = record.kind
        if kind == "event":
            check = self.validator.check_event
        elif kind == "heartbeat":
            check = self.validator.check_heartbeat
        else:
            raise KeyError(kind)
        checked = check(record.value, now, topic=record.topic or kind, partition=record.partition,
                        offset=record.offset)
        if isinstance(checked, Rejection):
            out.rejections.append(checked)
            return None
        if checked is None:
            out.ignored += 1
            return None
        self._apply(checked, now, out)
        return checked

    def _apply(self, record: Event | Heartbeat, now: datetime, out: Outputs) -> None:
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
        correlator = self.correlator
        late_before = correlator.late_events
        changes = correlator.process(event, now, signal)
        if correlator.late_events != late_before:  # judged late (it then joins and opens nothing)
            out.late += 1
        alert_id = changes[-1].alert.alert_id if changes else ""
        out.events.append(StoredEvent(event, signal.level if signal else -1, alert_id))
        out.alert_changes.extend(changes)

    def _life(self, utm_id: str, tenant_id: str, now: datetime, out: Outputs) -> None:
        known = self.registry.utms.get(utm_id)  # its id as the registry holds it: one string a UTM, not one a record
        result = self.monitor.alive(utm_id if known is None else known.utm_id, tenant_id, now)
        if result is not None:
            self._collect(result, out)

    def _verdict(self, verdict: Verdict, now: datetime, out: Outputs) -> None:
        changes = self.correlator.apply_verdict(verdict, now)
        if not changes:
            out.unknown_verdicts += 1
        out.alert_changes.extend(changes)

    # --- the façade a driver uses -------------------------------------------------------------

    def restore(self, keyed: Iterable[tuple[str, Any]], seen: Iterable[Any], now: datetime) -> None:
        """Rebuild from saved state (keys as `StateChanges.keyed` gave them) and remembered pairs:
        state log values as read (bytes: `encode_pairs` blocks, or the JSON lists written before),
        or pairs as `StateChanges.seen` gave them (or the older `(utm_id \x1f event_id, arrival)`);
        pairs older than the dedup window are skipped. A driver may have loaded the log into the
        Deduper it gave already (`Deduper.load_value`) and pass no `seen`."""
        horizon = now.timestamp() - self.deduper.window
        for pair in seen:
            if isinstance(pair, bytes):
                self.deduper.load_value(pair, horizon)
            elif pair[-1] <= horizon:
                continue
            elif len(pair) == 3:
                self.deduper.load(pair[0], int(pair[1]), float(pair[2]))
            else:  # written before the pairs were hashed: (utm_id \x1f event_id, arrival)
                self.deduper.load_key(pair[0], float(pair[1]))
        for key, value in keyed:
            if value is None:
                continue
            parts = key.split("\x1f")
            if key == MONITOR_KEY:
                self.monitor.load_monitor_state(value)
            elif parts[1:] == ["correlation"]:
                self.correlator.load_state(parts[0], value)
            elif len(parts) == 3 and parts[1] == "live":
                self.correlator.load_alert(parts[0], value)
            elif parts[1:] == ["life"]:
                self.monitor.load(parts[0], value)
            elif len(parts) == 3 and parts[1] == "finished":
                self._finished.load(parts[2], value)  # type: ignore[union-attr]
                self._finished_utm[parts[2]] = parts[0]
        self.deduper.rebuild_index(now)
        self.correlator.rebuild_index()

    def step(self, records: Iterable[InputRecord], now: datetime) -> DetectorStep:
        """Take a batch of raw inputs at `now`. A record the logic fails on becomes an
        `internal_error` rejection with its original bytes; the batch goes on."""
        stepping = self.stepping(now)
        stepping.take(records)
        return stepping.done()

    def stepping(self, now: datetime) -> Stepping:
        """`step` in parts: the records taken a slice at a time, the step's outputs and state once
        at the end (the same as one `step` over all of them). The worker hands the event loop back
        between slices: a batch of 10,000 records judged at once held it for seconds under load."""
        return Stepping(self, now)

    def _take_inputs(self, records: Iterable[InputRecord], now: datetime, out: Outputs, touched: set[str]) -> None:
        for record in records:
            try:
                if record.kind == "verdict":
                    verdict = Verdict.from_record(orjson.loads(record.value))
                    self._verdict(verdict, now, out)
                    utm_id = self.utm_of(verdict.alert_id)
                    if utm_id:
                        touched.add(utm_id)
                    continue
                accepted = self._take(record, now, out)
                if accepted is not None:
                    touched.add(accepted.utm_id)
            except Exception as exc:  # noqa: BLE001 - a record must never stop the batch
                out.rejections.append(_failure(record, exc, now))

    def step_accepted(self, records: Iterable[Event | Heartbeat], now: datetime) -> DetectorStep:
        """Apply records a driver validated itself (replay does, to move its clock first)."""
        out = Outputs()
        touched: set[str] = set()
        for record in records:
            self._apply(record, now, out)
            touched.add(record.utm_id)
        return self._stepped(out, touched, monitor=False)

    def tick(self, now: datetime, read_until: datetime | None = None) -> DetectorStep:
        """The timed check (at least once a minute): timeouts, mass outage, daily reminders.
        `read_until`: how far in time the driver has read its input (None: up to `now`); no UTM is
        judged silent for time beyond it."""
        out = Outputs()
        forgotten = self.monitor.forget_unless(self._watched)
        self._collect(self.monitor.check(now, read_until), out)
        touched = {c.utm_id for c in out.status_changes} | {n.utm_id for n in out.notices}
        step = self._stepped(out, touched, monitor=True)
        for utm_id in forgotten:
            step.state.keyed[state_key(utm_id, "life")] = None
        return step

    def _watched(self, utm_id: str) -> bool:
        """A UTM the registry knows, active, of an active tenant."""
        utm = self.registry.utms.get(utm_id)
        if utm is None or not utm.active:
            return False
        tenant = self.registry.tenants.get(utm.tenant_id)
        return tenant is not None and tenant.active

    def upkeep(self, now: datetime) -> DetectorStep:
        """Forget what can no longer matter (dedup pairs, alerts past joining and retention)."""
        self.deduper.expire(now)
        touched = self.correlator.expire(now)
        return self._stepped(Outputs(), touched, monitor=False)

    def utm_of(self, alert_id: str) -> str | None:
        return self.correlator.utm_of(alert_id) or self._finished_utm.get(alert_id)

    @property
    def mass_outage(self) -> bool:
        return self.monitor.mass_outage

    def silence_by(self, group: Callable[[str], Any]) -> dict[Any, tuple[int, int]]:
        """(silent, seen) UTMs per group (a worker: per partition), as of the last tick."""
        return self.monitor.silence_by(group)

    @property
    def utm_counts(self) -> dict[str, int]:
        return {"seen": self.monitor.seen_count, "offline": self.monitor.offline_count}

    def _stepped(self, out: Outputs, touched: set[str], *, monitor: bool) -> DetectorStep:
        keyed: dict[str, Any] = {}
        for utm_id in touched:
            keyed[state_key(utm_id, "correlation")] = self.correlator.head_for(utm_id)
            life = self.monitor.state_of(utm_id)
            if life is not None:
                keyed[state_key(utm_id, "life")] = life
        for utm_id, alert_id, record in self.correlator.drain_alerts():
            keyed[state_key(utm_id, "live", alert_id)] = record
        if isinstance(self._finished, RecordingDict):
            for alert_id, record in self._finished.drain().items():
                utm_id = record["utm_id"] if record is not None else self._finished_utm.pop(alert_id, None)
                if utm_id is None:
                    continue
                if record is not None:
                    self._finished_utm[alert_id] = utm_id
                keyed[state_key(utm_id, "finished", alert_id)] = record
        if monitor:
            keyed[MONITOR_KEY] = self.monitor.monitor_state()
        return DetectorStep(out, StateChanges(keyed, self.deduper.drain()))

    @staticmethod
    def _collect(result: MonitorResult, out: Outputs) -> None:
        out.status_changes.extend(result.status_changes)
        out.notices.extend(result.notices)
        out.incidents.extend(result.incidents)
        out.signs_of_life.extend(result.signs_of_life)


class Stepping:
    """One step of a Detector taken in parts (`Detector.stepping`)."""

    __slots__ = ("detector", "now", "out", "touched")

    def __init__(self, detector: Detector, now: datetime) -> None:
        self.detector, self.now = detector, now
        self.out = Outputs()
        self.touched: set[str] = set()

    def take(self, records: Iterable[InputRecord]) -> None:
        self.detector._take_inputs(records, self.now, self.out, self.touched)

    def done(self) -> DetectorStep:
        return self.detector._stepped(self.out, self.touched, monitor=False)


def _failure(record: InputRecord, exc: Exception, now: datetime) -> Rejection:
    return rejected("internal_error", f"{type(exc).__name__}: {exc}"[:500], record.value, now, record.topic or record.kind,
                    record.partition, record.offset)


class MailDesk:
    """Decides when each tenant's mails go and renders them."""

    def __init__(self, settings: Settings, tenant_of_id: Callable[[str], Tenant | None],
                 scheduler: MailScheduler | None = None) -> None:
        self.settings = settings
        self.tenant_of_id = tenant_of_id
        self.scheduler = scheduler if scheduler is not None else MailScheduler(
            settings.mail_group_wait, settings.mail_group_interval, settings.mail_urgent_wait,
        )

    # --- the façade a driver uses -------------------------------------------------------------

    def restore(self, keyed: Iterable[tuple[str, Any]]) -> None:
        """Rebuild the tenants' schedules from saved state (keys as `MailStep.state` gave them: a
        head per tenant, a record per pending alert and one per mailed grade)."""
        s = self.settings
        for key, value in keyed:
            if value is None:
                continue
            tenant_id, _, rest = key.partition("\x1f")
            schedule = self.scheduler.tenants.get(tenant_id)
            if schedule is None:
                schedule = self.scheduler.tenants[tenant_id] = TenantMailSchedule(
                    s.mail_group_wait, s.mail_group_interval, s.mail_urgent_wait)
            if rest == "schedule":
                schedule.load_head(value)
            elif rest.startswith("pending\x1f"):
                schedule.load_pending(value)
            elif rest.startswith("mailed\x1f"):
                schedule.load_mailed(rest.partition("\x1f")[2], value)

    def step(self, requests: Iterable[MailRequest], now: datetime) -> MailStep:
        """Take mail requests at `now`: mails that go at once (verdicts, UTM notices) come back;
        alert changes wait for their group."""
        mails: list[Mail] = []
        tenants: set[str] = set()
        for request in requests:
            if request.notice is not None:
                mails.extend(self.notice(request.notice, now))
                continue
            assert request.change is not None
            tenants.add(request.tenant_id)
            mails.extend(self.offer(request.change, now, request.at))
        return self._stepped(mails, tenants)

    def tick(self, now: datetime) -> MailStep:
        """The alert mails that fell due by `now`, for the driver to send."""
        due = {t for t, s in self.scheduler.tenants.items() if (at := s.due_at()) is not None and at <= now}
        if not due:
            return MailStep()
        return self._stepped(self.due(now), due)

    def _stepped(self, mails: list[Mail], tenants: set[str]) -> MailStep:
        step = MailStep(mails)
        for tenant_id in tenants:
            schedule = self.scheduler.tenants.get(tenant_id)
            if schedule is not None:
                for alert_id, record in schedule.drain_pending():
                    step.state.keyed[state_key(tenant_id, "pending", alert_id)] = record
                for alert_id, mailed in schedule.drain_mailed():
                    step.state.keyed[state_key(tenant_id, "mailed", alert_id)] = mailed
            if schedule is None or schedule.is_idle():
                self.scheduler.tenants.pop(tenant_id, None)
                step.state.keyed[state_key(tenant_id, "schedule")] = None
            else:
                step.state.keyed[state_key(tenant_id, "schedule")] = schedule.head_state()
        return step

    def _mailable(self, tenant_id: str, moment: datetime) -> Tenant | None:
        """The tenant, if active and in contract on the local day of `moment`: the mail's time for
        UTM mails, the alert's latest event for alert mails (contract_end is judged by the event's
        day, so an alert of the last day is mailed even when its mail goes the day after)."""
        tenant = self.tenant_of_id(tenant_id)
        if tenant is None or not tenant.is_serviced_on(moment.astimezone(self.settings.tz).date()):
            return None
        return tenant

    def offer(self, change: AlertChange, now: datetime, judged_at: datetime | None = None) -> list[Mail]:
        """An alert change. A verdict's report or re-grade is mailed at once, and then counts as the
        grade the customer was told; any other change waits for its group (new or raised grades),
        its arrival the moment it was judged (`judged_at`, never after `now`; `now` without it).
        A change brought by an event after the contract's end is never mailed."""
        alert = change.alert
        tenant = self._mailable(alert.tenant_id, alert.last_seen)
        if change.verdict is None:
            if tenant is not None:
                self.scheduler.offer(alert, now if judged_at is None else min(judged_at, now))
            return []
        if tenant is None or not change.notice:
            return []
        self.scheduler.note_mailed(alert.tenant_id, alert.alert_id, alert.grade, now)
        mail = render_verdict_mail(change.notice, tenant, alert, change.verdict, now, self.settings.tz,
                                   previous_grade=change.previous_grade)
        return [replace(mail, arrived_at=now)]

    def notice(self, notice: Notice, now: datetime) -> list[Mail]:
        if not notice.mailed:
            return []
        tenant = self._mailable(notice.tenant_id, now)
        if tenant is None:
            return []
        return [render_utm_mail(notice.kind, tenant, notice.utm_id, notice.offline_since, now, self.settings.tz)]

    def next_due(self, tenants: Iterable[str] | None = None) -> datetime | None:
        """The earliest due time of every tenant's pending alerts, or of only those `tenants`."""
        return self.scheduler.next_due(tenants)

    def due(self, now: datetime) -> list[Mail]:
        """The alert mails due at `now`: per tenant, its pending alerts in mails of at most
        `MAX_ALERTS_PER_MAIL`, all at `now`, the highest grades in the first."""
        mails = []
        for tenant_id, taken in self.scheduler.take_due_pending(now):
            taken = [w for w in taken if self._mailable(tenant_id, w.alert.last_seen)]
            tenant = self.tenant_of_id(tenant_id)
            if tenant is None:
                continue
            for part in split_for_mails(taken, MAX_ALERTS_PER_MAIL):
                mail = render_alert_mail(tenant, _highest_first([w.alert for w in part]), None, now, self.settings.tz)
                mails.append(replace(mail, arrived_at=min(w.arrival for w in part)))
        return mails


def _highest_first(alerts: list[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (-a.grade, a.first_seen, a.alert_id))
