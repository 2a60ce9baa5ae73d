"""What the UTM monitor tells the rest of the pipeline: notices for customers, incidents for operators."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pipeline.models import UtmStatusChange, iso

NOTICE_KINDS = ("utm-down", "utm-down-reminder", "utm-recovered")
SUPPRESSION_REASONS = ("mass_outage", "not_mailable", "down_not_mailed")


@dataclass(frozen=True, slots=True)
class Notice:
    """A decision about one customer notification; only `mailed` ones become mails.

    `reason` says why an unmailed one was held back. `day` is the local day of a reminder.
    """

    kind: str
    utm_id: str
    tenant_id: str
    at: datetime
    offline_since: datetime | None
    last_seen: datetime | None
    mailed: bool
    reason: str | None = None
    day: date | None = None

    @property
    def identity(self) -> str:
        """Stable across restarts and replays: the base of the mail's Message-ID."""
        if self.kind == "utm-down-reminder":
            return f"{self.kind}/{self.utm_id}/{self.day.isoformat() if self.day else ''}"
        return f"{self.kind}/{self.utm_id}/{iso(self.offline_since)}"

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "utm_id": self.utm_id, "tenant_id": self.tenant_id, "at": iso(self.at),
            "offline_since": iso(self.offline_since), "last_seen": iso(self.last_seen),
            "mailed": self.mailed, "reason": self.reason, "day": iso(self.day), "identity": self.identity,
        }


@dataclass(frozen=True, slots=True)
class Incident:
    kind: str
    state: str
    utms: int
    at: datetime

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": self.state, "utms": self.utms, "at": iso(self.at)}


@dataclass(slots=True)
class MonitorResult:
    """Everything one call of the monitor produced, in the order it happened."""

    status_changes: list[UtmStatusChange] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    signs_of_life: list[tuple[str, str, datetime]] = field(default_factory=list)  # (utm_id, tenant_id, last_seen)

    @property
    def mails(self) -> list[Notice]:
        return [n for n in self.notices if n.mailed]

    def extend(self, other: "MonitorResult") -> None:
        self.status_changes.extend(other.status_changes)
        self.notices.extend(other.notices)
        self.incidents.extend(other.incidents)
        self.signs_of_life.extend(other.signs_of_life)
