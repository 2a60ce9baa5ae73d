"""Plain data that flows between the steps of the pipeline.

Every time here is an aware datetime in UTC; every record method returns JSON-ready data
(times in RFC 3339), which is the wire format described by `schemas/`.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any, Literal

EVENT_TYPES = ("av", "ips", "url", "app", "web")
THREAT_TYPES = ("av", "ips", "url")
ACTIONS = ("blocked", "disarmed", "detected", "allowed")
DIRECTIONS = ("outbound", "inbound", "internal")
ZONES = ("wan", "lan", "ssid1", "ssid2")
REJECTION_REASONS = (
    "too_large", "invalid_json", "schema", "bad_timestamp",
    "unregistered_utm", "inactive_tenant", "inactive_utm",
)
NOTICE_KINDS = ("utm-down", "utm-down-reminder", "utm-recovered")
SUPPRESSION_REASONS = ("mass_outage", "not_mailable", "down_not_mailed")
GRADE_STARS = {3: "★★★", 2: "★★☆", 1: "★☆☆", 0: ""}
MAIL_KINDS = ("alert", "utm-down", "utm-down-reminder", "utm-recovered", "investigation-report", "regrade",
              "maintenance-planned", "maintenance-emergency", "fault", "firmware", "notice-cancelled",
              "monthly-report")
UtmStatusName = Literal["never_seen", "online", "offline"]


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not timezone.utc:
            value = value.astimezone(timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat()


def parse_time(text: str) -> datetime:
    """RFC 3339 with offset -> aware UTC datetime; raises ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("time without offset")
    return value.astimezone(timezone.utc)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_CONVERTED = (datetime, date, tuple)


def _record(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass as JSON-ready values. On the hot path (every event is stored), so
    the field names are looked up once per class and most values pass one type check."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, _CONVERTED):
            value = list(value) if isinstance(value, tuple) else iso(value)
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    notify_emails: tuple[str, ...]
    locale: str = "ja"
    service_start: date | None = None
    contract_end: date | None = None
    industry: str | None = None
    region: str | None = None
    size_band: str | None = None
    active: bool = True
    admin_emails: tuple[str, ...] = ()
    """Where service notices go (at most 3); empty means `notify_emails`."""

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Tenant":
        return cls(
            tenant_id=_shared(data["tenant_id"]), name=data["name"],
            notify_emails=tuple(data["notify_emails"]), locale=_shared(data.get("locale") or "ja"),
            service_start=date.fromisoformat(data["service_start"]) if data.get("service_start") else None,
            contract_end=date.fromisoformat(data["contract_end"]) if data.get("contract_end") else None,
            industry=_shared(data.get("industry")), region=_shared(data.get("region")),
            size_band=_shared(data.get("size_band")),
            active=bool(data.get("active", True)), admin_emails=tuple(data.get("admin_emails") or ()),
        )

    @property
    def notice_emails(self) -> tuple[str, ...]:
        """The administrators that service notices go to: `admin_emails`, else `notify_emails`."""
        return self.admin_emails or self.notify_emails

    def is_serviced_on(self, day: date) -> bool:
        """Active and not past its contract end: the tenant may be mailed on that day."""
        return self.active and (self.contract_end is None or day <= self.contract_end)


@dataclass(frozen=True, slots=True)
class Utm:
    utm_id: str
    tenant_id: str
    model: str | None = None
    registered_at: datetime | None = None
    active: bool = True
    firmware: str | None = None
    """The firmware the operator deployed (a notice may concern the UTMs on a given firmware)."""

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Utm":
        registered = data.get("registered_at")
        return cls(
            utm_id=data["utm_id"], tenant_id=_shared(data["tenant_id"]), model=_shared(data.get("model")),
            registered_at=parse_time(registered) if registered else None,
            active=bool(data.get("active", True)), firmware=_shared(data.get("firmware")),
        )


def _shared(text: Any) -> Any:
    """One string object for every copy of a value that many registry records repeat (a UTM's
    tenant id, its model and firmware; a tenant's locale, industry, region): a worker holds every
    record of 100,000 UTMs, and a copy each was ~60 bytes a field a UTM."""
    return sys.intern(text) if type(text) is str else text


@dataclass(slots=True)
class Registry:
    """Tenants and UTMs by id: what the compacted registry topics hold."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    utms: dict[str, Utm] = field(default_factory=dict)
    maintenance: dict[str, Any] = field(default_factory=dict)
    """Maintenance windows by notice id (pipeline.notices.windows.MaintenanceWindow), from the
    `service.notices` topic or a replay's notice lines: they silence UTM-down judgements."""

    def tenant_of(self, utm_id: str) -> Tenant | None:
        utm = self.utms.get(utm_id)
        return self.tenants.get(utm.tenant_id) if utm else None


@dataclass(slots=True)
class Event:
    """An accepted, normalized raw event (CONTRACT.md, raw event v1) with its tenant resolved."""

    event_id: str
    utm_id: str
    tenant_id: str
    ts: datetime
    type: str
    action: str
    direction: str
    src_ip: str
    dst_ip: str
    received_at: datetime
    src_mac: str | None = None
    dst_mac: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    proto: str | None = None
    src_zone: str | None = None
    dst_zone: str | None = None
    signature_id: str | None = None
    signature: str | None = None
    threat_category: str | None = None
    vendor_severity: int | None = None
    url: str | None = None
    domain: str | None = None
    file_name: str | None = None
    file_sha256: str | None = None
    app_name: str | None = None
    web_category: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Event":
        values = dict(data)
        values["ts"] = parse_time(values["ts"])
        values["received_at"] = parse_time(values["received_at"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    utm_id: str
    ts: datetime
    firmware: str | None = None
    signatures_version: str | None = None
    uptime_s: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    topic: str
    partition: int | None
    offset: int | None
    received_at: datetime
    value: str | None = None
    value_base64: str | None = None
    original_size: int | None = None
    """Bytes of the whole original; `value`/`value_base64` carry at most its first 64 KiB."""
    original_sha256: str | None = None

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class Alert:
    """One version of an alert, as published to the `alerts` topic."""

    alert_id: str
    tenant_id: str
    utm_id: str
    host_ip: str | None
    host_mac: str | None
    grade: int
    rule: str
    title: str
    first_seen: datetime
    last_seen: datetime
    event_count: int
    categories: tuple[str, ...]
    recommended_action: str
    status: str
    insurance_eligible_until: date | None
    version: int = 1
    updated_at: datetime | None = None
    evidence: dict[str, list[str]] = field(default_factory=dict)
    """A few distinct raw values per event field (signature, url, domain, file_name) for the mail;
    an addition to the contract's alert record."""

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Alert":
        values = dict(data)
        values["evidence"] = {k: list(v) for k, v in (values.get("evidence") or {}).items()}
        for name in ("first_seen", "last_seen", "updated_at"):
            if values.get(name):
                values[name] = parse_time(values[name])
        if values.get("insurance_eligible_until"):
            values["insurance_eligible_until"] = date.fromisoformat(values["insurance_eligible_until"])
        values["categories"] = tuple(values.get("categories") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Verdict:
    alert_id: str
    grade: int
    note: str
    ts: datetime

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Verdict":
        return cls(alert_id=data["alert_id"], grade=int(data["grade"]), note=data["note"], ts=parse_time(data["ts"]))


@dataclass(frozen=True, slots=True)
class UtmStatusChange:
    utm_id: str
    tenant_id: str
    status: str
    at: datetime
    last_seen: datetime | None
    offline_since: datetime | None

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class Notice:
    """A UTM status notice (the heartbeat monitor's decision about one customer notification);
    only `mailed` ones become mails.

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

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Notice":
        def when(name: str) -> datetime | None:
            return parse_time(data[name]) if data.get(name) else None

        return cls(kind=data["kind"], utm_id=data["utm_id"], tenant_id=data["tenant_id"], at=parse_time(data["at"]),
                   offline_since=when("offline_since"), last_seen=when("last_seen"), mailed=bool(data["mailed"]),
                   reason=data.get("reason"), day=date.fromisoformat(data["day"]) if data.get("day") else None)


@dataclass(frozen=True, slots=True)
class Mail:
    """A rendered mail in the outbox: everything the sender needs, nothing it must look up."""

    message_id: str
    kind: str
    tenant_id: str
    to: tuple[str, ...]
    subject: str
    grade: int | None
    alert_ids: tuple[str, ...]
    utm_id: str | None
    sent_at: datetime
    raw: str
    arrived_at: datetime | None = None
    """When what the mail tells reached the mail desk (the earliest of its alerts), for the
    alert-to-SMTP latency; not part of the mail's identity."""

    def to_record(self) -> dict[str, Any]:
        return _record(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Mail":
        values = dict(data)
        values["to"] = tuple(values["to"])
        values["alert_ids"] = tuple(values["alert_ids"])
        values["sent_at"] = parse_time(values["sent_at"])
        values["arrived_at"] = parse_time(values["arrived_at"]) if values.get("arrived_at") else None
        return cls(**values)


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
