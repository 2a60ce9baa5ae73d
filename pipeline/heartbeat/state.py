"""The state of one UTM as the monitor keeps it, and its JSON form as a driver saves it (keyed by utm_id)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pipeline.models import iso, parse_time

ONLINE = "online"
OFFLINE = "offline"
NEVER_SEEN = "never_seen"


@dataclass(slots=True)
class UtmState:
    """`down_mailed`: the customer was told of the current outage.
    `down_pending`: it went down during a mass outage; its utm-down waits for the outage to end.
    `reminded_on`: the local day of the last daily reminder, so a restart never repeats it.
    `quiet`: online but silent for more than half the timeout at the last check (not saved: the
    first check after a restart finds it again).
    """

    tenant_id: str
    status: str
    last_seen: datetime
    offline_since: datetime | None = None
    down_mailed: bool = False
    down_pending: bool = False
    reminded_on: date | None = None
    second: int = 0
    quiet: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id, "status": self.status, "last_seen": iso(self.last_seen),
            "offline_since": iso(self.offline_since), "down_mailed": self.down_mailed,
            "down_pending": self.down_pending, "reminded_on": iso(self.reminded_on),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "UtmState":
        if data["status"] not in (ONLINE, OFFLINE):
            raise ValueError(f"a saved UTM state is online or offline, got {data['status']!r}")
        last_seen = parse_time(data["last_seen"])
        return cls(
            tenant_id=data["tenant_id"], status=data["status"], last_seen=last_seen,
            offline_since=parse_time(data["offline_since"]) if data.get("offline_since") else None,
            down_mailed=bool(data.get("down_mailed")), down_pending=bool(data.get("down_pending")),
            reminded_on=date.fromisoformat(data["reminded_on"]) if data.get("reminded_on") else None,
            second=second_of(last_seen),
        )


def second_of(moment: datetime) -> int:
    return int(moment.timestamp() // 1)
