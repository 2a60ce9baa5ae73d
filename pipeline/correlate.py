"""Correlation and grading: per host, signals gather into alerts (CONTRACT.md, "Default grading policy").

A host is the customer's endpoint of an event (`host_of`: the destination of an inbound event,
else the source), known by its MAC where the UTM gave one, else its IP, within its UTM (`host_key`).
The policy (`pipeline.rules`) only says which signal an event gives.

Live state is kept per UTM: its watermark and the alerts that may still take events. A driver
saves it as bounded records: one small head per UTM (`head_for` / `load_state`) and one record per
live alert (`drain_alerts` / `load_alert`), because a UTM may have any number of hosts with alerts
(one UTM with 150 infected hosts was a 1 MB record, over the broker's limit). Each alert keeps
bounded evidence: a few values per field, at most `MAX_CATEGORIES` categories and
`MAX_CAUTION_SIGNATURES` signature ids (enough to tell "three or more"), so one alert's record
stays below ~100 KB whatever its events carry. `state_for` / `snapshot` give a UTM's whole state
in one value, for tests and benchmarks. Once no in-time event can join an alert any more,
`expire` moves it to `finished` (alert_id -> alert record), an injectable mapping kept
`retention` long so that verdicts still find it (the Detector passes one that records its changes,
which a driver saves as state). All times are event times except `now`, which stamps `updated_at`
and drives that retention.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from pipeline.insurance import insurance_eligible_until
from pipeline.models import Alert, Event, Tenant, Verdict, iso, parse_time
from pipeline.rules import Policy, Signal

_NOT_GIVEN = object()
RAISE_SIGNATURES = 3
INVESTIGATION_REPORT = "investigation-report"
REGRADE = "regrade"
EVIDENCE_FIELDS = ("signature", "url", "domain", "file_name")
EVIDENCE_PER_FIELD = 5
EVIDENCE_MAX_CHARS = 500
MAX_CATEGORIES = 16
"""Categories kept per alert (signal categories may be any `threat_category` string)."""
MAX_CATEGORY_CHARS = 100
MAX_CAUTION_SIGNATURES = 64
"""Caution signature ids kept per alert: the grade needs only "three or more different"; past 64,
an id not among those kept counts as new (it can only matter after a verdict lowered the grade of
an alert that has shown 64 different signatures)."""
SIGNATURE_ID_CHARS = 64
RECOMMENDED_ACTION = {3: "full_scan", 2: "full_scan", 1: "caution", 0: "wait_investigation"}


@dataclass(frozen=True)
class AlertChange:
    """One new version of an alert. `significant` is False when only counts or times moved,
    so the caller may coalesce those; `verdict` is set when an analyst's verdict made the change."""

    alert: Alert
    previous_grade: int | None
    notice: str | None
    significant: bool = True
    verdict: Verdict | None = None


def host_of(event: Event) -> tuple[str | None, str | None]:
    """(ip, mac) of the customer's endpoint: the destination of inbound events, else the source."""
    if event.direction == "inbound":
        return event.dst_ip, event.dst_mac
    return event.src_ip, event.src_mac


def normalize_mac(mac: str) -> str:
    return mac.strip().lower().replace("-", ":")


def host_key(event: Event) -> str:
    """The host an alert is about, scoped to its tenant and UTM: its MAC when known, else its IP."""
    ip, mac = host_of(event)
    endpoint = f"mac:{normalize_mac(mac)}" if mac else f"ip:{ip}"
    return f"{event.tenant_id}|{event.utm_id}|{endpoint}"


def with_evidence(evidence: dict[str, list[str]], event: Event) -> dict[str, list[str]]:
    """The alert's evidence with this event's values added: the first few distinct of each field."""
    merged = {name: list(values) for name, values in evidence.items()}
    for name in EVIDENCE_FIELDS:
        value = getattr(event, name)
        if not value:
            continue
        values = merged.setdefault(name, [])
        value = value[:EVIDENCE_MAX_CHARS]
        if value not in values and len(values) < EVIDENCE_PER_FIELD:
            values.append(value)
    return merged


def with_category(categories: tuple[str, ...], category: str) -> tuple[str, ...]:
    """The alert's categories with this one added (sorted), at most MAX_CATEGORIES of them."""
    category = category[:MAX_CATEGORY_CHARS]
    if category in categories or len(categories) >= MAX_CATEGORIES:
        return categories
    return tuple(sorted((*categories, category)))


def signature_token(signature_id: str) -> str:
    """A signature id as kept: itself, or a digest of it when it is long."""
    if len(signature_id) <= SIGNATURE_ID_CHARS:
        return signature_id
    return "#" + hashlib.blake2b(signature_id.encode(), digest_size=16).hexdigest()


def make_alert_id(tenant_id: str, utm_id: str, host: str, opening_event_id: str) -> str:
    identity = "|".join((tenant_id, utm_id, host, opening_event_id)).encode()
    return "al-" + hashlib.blake2b(identity, digest_size=10).hexdigest()


def recommended_action(grade: int, status: str) -> str:
    return "none" if status == "closed" and grade == 0 else RECOMMENDED_ACTION[grade]


def status_for(grade: int) -> str:
    return "investigating" if grade == 0 else "open"


@dataclass
class _Tracked:
    alert: Alert
    host: str
    caution_signatures: set[str] = field(default_factory=set)
    seq: int = 0
    """Opening order among its UTM's alerts (joinable alerts are tried newest first)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert.to_record(), "host": self.host,
            "caution_signatures": sorted(self.caution_signatures), "seq": self.seq,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], seq: int = 0) -> "_Tracked":
        return cls(
            alert=Alert.from_record(data["alert"]), host=data["host"],
            caution_signatures=set(data["caution_signatures"]), seq=int(data.get("seq", seq)),
        )


@dataclass
class _UtmState:
    watermark: datetime | None = None
    alerts: dict[str, _Tracked] = field(default_factory=dict)
    # host -> ids of its alerts that may still take events, oldest first
    joinable: dict[str, list[str]] = field(default_factory=dict)
    opened: int = 0
    """Alerts opened so far (the next one's `seq`)."""

    def head(self) -> dict[str, Any]:
        return {"watermark": iso(self.watermark), "opened": self.opened}

    def to_json(self) -> dict[str, Any]:
        return {
            **self.head(),
            "alerts": [t.to_json() for t in self.alerts.values()],
            "joinable": {host: list(ids) for host, ids in self.joinable.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "_UtmState":
        """A head, or a whole state (`to_json`; also the single record saved before alerts were
        saved one by one)."""
        tracked = [_Tracked.from_json(item, seq) for seq, item in enumerate(data.get("alerts", []))]
        return cls(
            watermark=parse_time(data["watermark"]) if data.get("watermark") else None,
            alerts={t.alert.alert_id: t for t in tracked},
            joinable={host: list(ids) for host, ids in data.get("joinable", {}).items()},
            opened=max([int(data.get("opened", 0)), *(t.seq + 1 for t in tracked)]),
        )

    def add(self, tracked: _Tracked) -> None:
        """Index an alert loaded on its own, keeping each host's alerts in opening order."""
        self.alerts[tracked.alert.alert_id] = tracked
        ids = [i for i in self.joinable.get(tracked.host, []) if i != tracked.alert.alert_id]
        ids.append(tracked.alert.alert_id)
        ids.sort(key=lambda i: self.alerts[i].seq)
        self.joinable[tracked.host] = ids
        self.opened = max(self.opened, tracked.seq + 1)


class Correlator:
    def __init__(
        self, policy: Policy, *, window: timedelta, tz: ZoneInfo,
        tenant_of: Callable[[str], Tenant | None], max_span: timedelta = timedelta(hours=24),
        lateness: timedelta = timedelta(minutes=10), retention: timedelta = timedelta(days=30),
        finished: MutableMapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.policy = policy
        self.window = window
        self.tz = tz
        self.tenant_of = tenant_of
        self.max_span = max_span
        self.lateness = lateness
        self.retention = retention
        self.finished: MutableMapping[str, dict[str, Any]] = {} if finished is None else finished
        self._finished_by_day: defaultdict[int, list[str]] = defaultdict(list)
        self._utms: dict[str, _UtmState] = {}
        self._utm_of_alert: dict[str, str] = {}
        self._changed: dict[str, str] = {}  # alert_id -> utm_id of live alerts changed since drain_alerts
        self.late_events = 0
        self.ignored_verdicts = 0
        self.rebuild_index()

    def rebuild_index(self) -> None:
        """Index `finished` by day of last change; call once after that store was restored."""
        self._finished_by_day.clear()
        for alert_id, record in self.finished.items():
            self._finished_by_day[_day_number(parse_time(record["updated_at"]))].append(alert_id)

    # --- events ---------------------------------------------------------------------------------

    def is_late(self, event: Event) -> bool:
        state = self._utms.get(event.utm_id)
        return bool(state and state.watermark and event.ts < state.watermark - self.lateness)

    def process(self, event: Event, now: datetime, signal: Signal | None | object = _NOT_GIVEN) -> list[AlertChange]:
        """`signal` is the policy's signal of the event, when the caller already has it."""
        if self.is_late(event):
            self.late_events += 1
            return []
        state = self._utms.setdefault(event.utm_id, _UtmState())
        # An event dated ahead of the clock counts, as the UTM's newest, as if dated at the clock:
        # one record from a wrong clock must not make the UTM's later events late.
        newest = min(event.ts, now)
        if state.watermark is None or newest > state.watermark:
            state.watermark = newest
        if signal is _NOT_GIVEN:
            signal = self.policy.signal(event)
        if signal is None:
            return []
        host = host_key(event)
        tracked = self._joinable_alert(state, host, event.ts)
        if tracked is None:
            alert_id = make_alert_id(event.tenant_id, event.utm_id, host, event.event_id)
            tracked = state.alerts.get(alert_id)
            if tracked is None:
                return [self._open(state, host, event, signal, alert_id, now)]
        return [self._join(tracked, event, signal, now)]

    def _joinable_alert(self, state: _UtmState, host: str, ts: datetime) -> _Tracked | None:
        """The newest open alert the event fits, preferring one it follows over one it would
        extend backwards (a late event between two alerts belongs to the earlier, as in order)."""
        fitting = [
            tracked for tracked in (state.alerts.get(i) for i in reversed(state.joinable.get(host, ())))
            if tracked is not None and tracked.alert.status != "closed" and self._fits(tracked.alert, ts)
        ]
        following = [t for t in fitting if ts >= t.alert.first_seen]
        return (following or fitting or [None])[0]

    def _fits(self, alert: Alert, ts: datetime) -> bool:
        if ts >= alert.last_seen:
            gap = ts - alert.last_seen
        elif ts < alert.first_seen:
            gap = alert.first_seen - ts
        else:
            gap = timedelta(0)
        span = max(alert.last_seen, ts) - min(alert.first_seen, ts)
        return gap < self.window and span < self.max_span

    @staticmethod
    def _contribution(caution_signatures: set[str], event: Event, signal: Signal) -> int:
        """The grade this event argues for; records a new signature of a caution signal."""
        if signal.level == 1 and event.signature_id:
            token = signature_token(event.signature_id)
            if token not in caution_signatures:
                if len(caution_signatures) < MAX_CAUTION_SIGNATURES:
                    caution_signatures.add(token)
                if len(caution_signatures) >= RAISE_SIGNATURES:
                    return 2
        return signal.level

    def _insurance(self, tenant_id: str, utm_id: str, at: datetime) -> Any:
        tenant = self.tenant_of(utm_id)
        if tenant is None or tenant.tenant_id != tenant_id:
            return None
        return insurance_eligible_until(tenant, at, self.tz)

    def _open(self, state: _UtmState, host: str, event: Event, signal: Signal, alert_id: str,
              now: datetime) -> AlertChange:
        ip, mac = host_of(event)
        signatures: set[str] = set()
        grade = self._contribution(signatures, event, signal)
        status = status_for(grade)
        alert = Alert(
            alert_id=alert_id, tenant_id=event.tenant_id, utm_id=event.utm_id, host_ip=ip, host_mac=mac,
            grade=grade, rule=signal.rule, title=signal.title, first_seen=event.ts, last_seen=event.ts,
            event_count=1, categories=with_category((), signal.category),
            recommended_action=recommended_action(grade, status),
            status=status,
            insurance_eligible_until=self._insurance(event.tenant_id, event.utm_id, event.ts) if grade == 3 else None,
            version=1, updated_at=now, evidence=with_evidence({}, event),
        )
        state.alerts[alert_id] = _Tracked(alert, host, signatures, seq=state.opened)
        state.opened += 1
        state.joinable.setdefault(host, []).append(alert_id)
        self._utm_of_alert[alert_id] = event.utm_id
        self._changed[alert_id] = event.utm_id
        return AlertChange(alert, previous_grade=None, notice=None, significant=True)

    def _join(self, tracked: _Tracked, event: Event, signal: Signal, now: datetime) -> AlertChange:
        old = tracked.alert
        contribution = self._contribution(tracked.caution_signatures, event, signal)
        grade = max(old.grade, contribution)
        status = old.status if old.status == "closed" else status_for(grade)
        changes: dict[str, Any] = {}
        if self.policy.precedence(signal.rule) > self.policy.precedence(old.rule):
            changes.update(rule=signal.rule, title=signal.title)
        if grade == 3 and old.grade < 3:
            changes["insurance_eligible_until"] = self._insurance(old.tenant_id, old.utm_id, event.ts)
        elif contribution == 3 and old.grade == 3 and event.ts < old.last_seen:
            # A ★★★ event dated before the one that raised the alert, arriving later (within the
            # lateness): it brought the alert to grade 3 first, so its day counts, whatever the order
            # of arrival (contract: the ts of the event that brought it to grade 3).
            earlier = self._insurance(old.tenant_id, old.utm_id, event.ts)
            if earlier is not None and (old.insurance_eligible_until is None
                                        or earlier < old.insurance_eligible_until):
                changes["insurance_eligible_until"] = earlier
        ip, mac = host_of(event)
        tracked.alert = replace(
            old, grade=grade, status=status, first_seen=min(old.first_seen, event.ts),
            last_seen=max(old.last_seen, event.ts), event_count=old.event_count + 1,
            categories=with_category(old.categories, signal.category),
            recommended_action=recommended_action(grade, status),
            host_ip=old.host_ip or ip, host_mac=old.host_mac or mac,
            version=old.version + 1, updated_at=now, evidence=with_evidence(old.evidence, event), **changes,
        )
        self._changed[old.alert_id] = old.utm_id
        significant = grade != old.grade or status != old.status
        return AlertChange(tracked.alert, previous_grade=old.grade, notice=None, significant=significant)

    # --- verdicts -------------------------------------------------------------------------------

    def utm_of(self, alert_id: str) -> str | None:
        return self._utm_of_alert.get(alert_id)

    def apply_verdict(self, verdict: Verdict, now: datetime) -> list[AlertChange]:
        """An analyst sets the grade (it may go down). Grade 0 closes the alert (nothing to report
        to the customer beyond the note); any other grade leaves it open to further evidence."""
        if not 0 <= verdict.grade <= 3:
            self.ignored_verdicts += 1
            return []
        utm_id = self._utm_of_alert.get(verdict.alert_id)
        if utm_id is not None:
            tracked = self._utms[utm_id].alerts[verdict.alert_id]
            change = self._judged(tracked.alert, verdict, now)
            tracked.alert = change.alert
            self._changed[verdict.alert_id] = utm_id
            return [change]
        record = self.finished.get(verdict.alert_id)
        if record is None:
            self.ignored_verdicts += 1
            return []
        change = self._judged(Alert.from_record(record), verdict, now)
        self._finish(change.alert)
        return [change]

    def _judged(self, old: Alert, verdict: Verdict, now: datetime) -> AlertChange:
        if old.status == "investigating":
            notice: str | None = INVESTIGATION_REPORT
        elif verdict.grade > old.grade:
            notice = REGRADE
        else:
            notice = None
        status = "closed" if verdict.grade == 0 else "open"
        insurance = old.insurance_eligible_until
        if verdict.grade < 3:
            insurance = None
        elif old.grade < 3:
            insurance = self._insurance(old.tenant_id, old.utm_id, verdict.ts)
        alert = replace(
            old, grade=verdict.grade, status=status, recommended_action=recommended_action(verdict.grade, status),
            insurance_eligible_until=insurance, version=old.version + 1, updated_at=now,
        )
        significant = verdict.grade != old.grade or status != old.status or notice is not None
        return AlertChange(alert, previous_grade=old.grade, notice=notice, significant=significant, verdict=verdict)

    # --- upkeep and state -----------------------------------------------------------------------

    def expire(self, now: datetime) -> set[str]:
        """Move alerts no in-time event can join any more to `finished`; forget finished alerts
        `retention` after their last change. Returns the UTMs whose live state changed."""
        changed: set[str] = set()
        for utm_id, state in self._utms.items():
            if state.watermark is None:
                continue
            earliest = state.watermark - self.lateness
            for host in list(state.joinable):
                keep = []
                for alert_id in state.joinable[host]:
                    tracked = state.alerts.get(alert_id)
                    if tracked is not None and self._may_join(tracked.alert, earliest):
                        keep.append(alert_id)
                    elif tracked is not None:
                        changed.add(utm_id)
                        del state.alerts[alert_id]
                        self._utm_of_alert.pop(alert_id, None)
                        self._changed[alert_id] = utm_id
                        self._finish(tracked.alert)
                if keep:
                    state.joinable[host] = keep
                else:
                    del state.joinable[host]
        cutoff = now - self.retention
        for day in [d for d in self._finished_by_day if d <= _day_number(cutoff)]:
            keep = []
            for alert_id in self._finished_by_day.pop(day):
                record = self.finished.get(alert_id)
                if record is None:
                    continue
                updated = parse_time(record["updated_at"])
                if _day_number(updated) != day:
                    continue  # changed since, listed under its newer day
                if updated < cutoff:
                    del self.finished[alert_id]
                else:
                    keep.append(alert_id)
            if keep:
                self._finished_by_day[day] = keep
        return changed

    def _finish(self, alert: Alert) -> None:
        self.finished[alert.alert_id] = alert.to_record()
        self._finished_by_day[_day_number(alert.updated_at or alert.last_seen)].append(alert.alert_id)

    def _may_join(self, alert: Alert, earliest: datetime) -> bool:
        return earliest - alert.last_seen < self.window and earliest - alert.first_seen < self.max_span

    def alerts(self, utm_id: str | None = None) -> list[Alert]:
        """Latest version of every remembered alert, live and finished (of one UTM, or all),
        by first_seen then id."""
        live = [t.alert for u, s in self._utms.items() if utm_id in (None, u) for t in s.alerts.values()]
        done = [Alert.from_record(r) for r in self.finished.values() if utm_id in (None, r["utm_id"])]
        return sorted(live + done, key=lambda a: (a.first_seen, a.alert_id))

    def state_for(self, utm_id: str) -> dict[str, Any]:
        """The UTM's whole state in one value (its head and every live alert)."""
        return self._utms.get(utm_id, _UtmState()).to_json()

    def head_for(self, utm_id: str) -> dict[str, Any]:
        """The UTM's own record, without its alerts: a few dozen bytes."""
        return self._utms.get(utm_id, _UtmState()).head()

    def drain_alerts(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(utm_id, alert_id, record or None when gone) of each live alert that changed since the
        last call: what a driver saves beside the UTM's head."""
        out = []
        for alert_id, utm_id in self._changed.items():
            state = self._utms.get(utm_id)
            tracked = state.alerts.get(alert_id) if state else None
            out.append((utm_id, alert_id, tracked.to_json() if tracked else None))
        self._changed.clear()
        return out

    def load_state(self, utm_id: str, data: dict[str, Any] | None) -> None:
        """A UTM's head (its alerts loaded on their own stay), or its whole state (replaces it:
        a record saved whole before alerts were saved one by one is saved again alert by alert at
        the next drain). None forgets the UTM."""
        if data and "alerts" not in data:
            head = _UtmState.from_json(data)
            state = self._utms.setdefault(utm_id, _UtmState())
            state.watermark = head.watermark
            state.opened = max(state.opened, head.opened)
            return
        previous = self._utms.pop(utm_id, None)
        if previous is not None:
            for alert_id in previous.alerts:
                self._utm_of_alert.pop(alert_id, None)
        if not data:
            return
        state = _UtmState.from_json(data)
        self._utms[utm_id] = state
        for alert_id in state.alerts:
            self._utm_of_alert[alert_id] = utm_id
            self._changed[alert_id] = utm_id

    def load_alert(self, utm_id: str, data: dict[str, Any]) -> None:
        """One live alert of a UTM, as `drain_alerts` gave it."""
        tracked = _Tracked.from_json(data)
        self._utms.setdefault(utm_id, _UtmState()).add(tracked)
        self._utm_of_alert[tracked.alert.alert_id] = utm_id

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {utm_id: state.to_json() for utm_id, state in self._utms.items()}

    @classmethod
    def restore(cls, policy: Policy, snapshot: dict[str, dict[str, Any]], **settings: Any) -> "Correlator":
        """A correlator with every UTM's state of `snapshot`; pass the `finished` store in settings."""
        correlator = cls(policy, **settings)
        for utm_id, data in snapshot.items():
            correlator.load_state(utm_id, data)
        return correlator


def _day_number(moment: datetime) -> int:
    return int(moment.timestamp() // 86400)
