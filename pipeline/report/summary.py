"""The month at a glance, computed from the rows of the portal views (pure)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from pipeline.models import THREAT_TYPES
from pipeline.report.month import MonthData

BLOCKING_ACTIONS = ("blocked", "disarmed")
TOP_CATEGORIES = 5


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    status: str
    """`online`, `offline`, or `never_seen` (no sign of life yet: not counted either way)."""


@dataclass(frozen=True)
class UtmMonth:
    utm_id: str
    status_now: str
    stops: int
    online_share: float | None
    """Online time over the time it was watched (online or offline); None if never seen."""
    offline_seconds: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class SevereAlert:
    alert_id: str
    title: str
    utm_id: str
    host_ip: str | None
    first_seen: datetime
    status: str
    insurance_until: date | None
    claim_open: bool


@dataclass(frozen=True)
class MonthlyReport:
    data: MonthData
    detections_by_day: dict[date, dict[str, int]]
    peer_by_day: dict[date, dict[str, float]]  # only days with a peer average (5 tenants or more)
    detections: int
    blocked: int
    by_type: dict[str, int]
    peer_detections: float
    alerts_by_grade: dict[int, int]
    alerts_by_status: dict[str, int]
    alert_count: int
    severe: tuple[SevereAlert, ...]
    utms: tuple[UtmMonth, ...]
    top_categories: tuple[tuple[str, int], ...]
    stops: int = field(default=0)

    @property
    def quiet(self) -> bool:
        """Nothing to act on: no alert of any grade and no UTM stop."""
        return self.alert_count == 0 and self.stops == 0

    @property
    def partial(self) -> bool:
        """In service for only part of the month (mid-month start or contract end)."""
        return len(self.data.days) < len(self.data.month.days())


def _availability(data: MonthData, utm_id: str, status_now: str) -> UtmMonth:
    changes = sorted((c for c in data.status_changes if c["utm_id"] == utm_id), key=lambda c: (c["at"], c["status"]))
    state = data.status_before.get(utm_id, "never_seen")
    at = data.start
    segments: list[Segment] = []
    stops = 0
    for change in changes:
        if change["at"] > at:
            segments.append(Segment(at, change["at"], state))
        at = max(at, change["at"])
        if change["status"] == "offline" and state != "offline":
            stops += 1
        state = change["status"]
    if data.end > at:
        segments.append(Segment(at, data.end, state))
    seconds: Counter[str] = Counter()
    for s in segments:
        seconds[s.status] += (s.end - s.start).total_seconds()
    watched = seconds["online"] + seconds["offline"]
    return UtmMonth(utm_id=utm_id, status_now=status_now, stops=stops,
                    online_share=seconds["online"] / watched if watched else None,
                    offline_seconds=seconds["offline"], segments=tuple(segments))


def summarize(data: MonthData) -> MonthlyReport:
    days = set(data.days)
    by_day: dict[date, dict[str, int]] = {d: {t: 0 for t in THREAT_TYPES} for d in data.days}
    by_type = {t: 0 for t in THREAT_TYPES}
    blocked = 0
    for row in data.detections:
        if row["day"] in days and row["type"] in by_type:
            by_day[row["day"]][row["type"]] += int(row["detections"])
            by_type[row["type"]] += int(row["detections"])
            blocked += int(row["detections"]) if row["action"] in BLOCKING_ACTIONS else 0
    # only the days the view gives a peer average for (none below 5 tenants in service)
    peers: dict[date, dict[str, float]] = {}
    for row in data.peers:
        if row["day"] in days and row["type"] in THREAT_TYPES:
            peers.setdefault(row["day"], {t: 0.0 for t in THREAT_TYPES})[row["type"]] = float(row["avg_detections"])
    grades = Counter(int(a["grade"]) for a in data.alerts)
    statuses = Counter(str(a["status"]) for a in data.alerts)
    today = data.as_of.astimezone(data.tz).date()
    severe = tuple(
        SevereAlert(alert_id=a["alert_id"], title=a["title"], utm_id=a["utm_id"], host_ip=a["host_ip"],
                    first_seen=a["first_seen"], status=a["status"], insurance_until=a["insurance_eligible_until"],
                    claim_open=a["insurance_eligible_until"] is not None and a["insurance_eligible_until"] >= today)
        for a in sorted(data.alerts, key=lambda a: (a["first_seen"], a["alert_id"])) if int(a["grade"]) == 3)
    utms = tuple(_availability(data, u["utm_id"], u["status"]) for u in data.utms)
    categories: dict[str, int] = defaultdict(int)
    for row in data.categories:
        if row["day"] in days and row["action"] in BLOCKING_ACTIONS and row["threat_category"]:
            categories[row["threat_category"]] += int(row["detections"])
    top = tuple(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES])
    return MonthlyReport(
        data=data, detections_by_day=by_day, peer_by_day=peers, detections=sum(by_type.values()), blocked=blocked,
        by_type=by_type, peer_detections=sum(sum(v.values()) for v in peers.values()),
        alerts_by_grade={g: grades.get(g, 0) for g in (3, 2, 1, 0)},
        alerts_by_status={s: statuses.get(s, 0) for s in ("open", "investigating", "closed")},
        alert_count=len(data.alerts), severe=severe, utms=utms, top_categories=top,
        stops=sum(u.stops for u in utms),
    )
