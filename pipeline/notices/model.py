"""One version of a service notice, as the compacted `service.notices` topic carries it (key
`notice_id`; schemas/notice.json)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pipeline.models import iso, parse_time

KINDS = ("maintenance-planned", "maintenance-emergency", "fault", "firmware")
MAINTENANCE_KINDS = ("maintenance-planned", "maintenance-emergency")
LEVELS = ("A", "B", "Z")
CANCELLED_KIND = "notice-cancelled"


@dataclass(frozen=True, slots=True)
class Audience:
    """All active tenants, or the listed tenants, or the tenants having a UTM whose model is in
    `models` and whose firmware is in `firmware` (a list left empty does not restrict)."""

    all: bool = False
    tenants: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    firmware: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        if self.tenants:
            return {"tenants": list(self.tenants)}
        out: dict[str, Any] = {}
        if self.models:
            out["models"] = list(self.models)
        if self.firmware:
            out["firmware"] = list(self.firmware)
        return out

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Audience":
        return cls(all=bool(data.get("all")), tenants=tuple(data.get("tenants") or ()),
                   models=tuple(data.get("models") or ()), firmware=tuple(data.get("firmware") or ()))


@dataclass(frozen=True, slots=True)
class ServiceNotice:
    notice_id: str
    kind: str
    audience: Audience
    title: dict[str, str]
    body: dict[str, str]
    version: int = 1
    level: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cancelled: bool = False
    short_notice: bool = False
    mail: bool | None = None
    """Whether it is mailed; None takes the kind's rule (firmware: portal only, others: mailed)."""
    published_at: datetime | None = None

    @property
    def is_maintenance(self) -> bool:
        return self.kind in MAINTENANCE_KINDS

    @property
    def mailed(self) -> bool:
        """Whether its versions are mailed: never a level Z fault; firmware only when it says so."""
        if self.kind == "fault" and self.level == "Z":
            return False
        if self.mail is not None:
            return self.mail
        return self.kind != "firmware"

    def title_in(self, locale: str) -> str:
        return self.title.get(locale) or self.title["ja"]

    def body_in(self, locale: str) -> str:
        return self.body.get(locale) or self.body["ja"]

    def next_version(self, **changes: Any) -> "ServiceNotice":
        return replace(self, version=self.version + 1, **changes)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "notice_id": self.notice_id, "kind": self.kind, "level": self.level,
            "starts_at": iso(self.starts_at), "ends_at": iso(self.ends_at),
            "audience": self.audience.to_record(), "title": dict(self.title), "body": dict(self.body),
            "version": self.version, "cancelled": self.cancelled, "short_notice": self.short_notice,
            "published_at": iso(self.published_at),
        }
        if self.mail is not None:
            record["mail"] = self.mail
        return record

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "ServiceNotice":
        def when(name: str) -> datetime | None:
            return parse_time(data[name]) if data.get(name) else None

        return cls(
            notice_id=data["notice_id"], kind=data["kind"], audience=Audience.from_record(data.get("audience") or {}),
            title=dict(data["title"]), body=dict(data["body"]), version=int(data.get("version") or 1),
            level=data.get("level"), starts_at=when("starts_at"), ends_at=when("ends_at"),
            cancelled=bool(data.get("cancelled")), short_notice=bool(data.get("short_notice")),
            mail=data.get("mail"), published_at=when("published_at"),
        )
