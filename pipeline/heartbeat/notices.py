"""What the UTM monitor tells the rest of the pipeline: notices for customers (`models.Notice`, which
the mail side reads too), incidents for operators."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.models import Notice, UtmStatusChange, iso


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
