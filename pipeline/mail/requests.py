"""What the UTM side asks the tenant side to mail: the record of the internal topic
`mimamori-mail-requests` (key tenant_id; schema `schemas/mail-request.json`).

`alert`: an alert is new or changed (the mail timing decides whether and when it is mailed);
`verdict`: an analyst's verdict changed it (`notice` says which mail, if any, goes at once);
`utm`: a UTM status notice (utm-down, reminder, recovered).

`at` (alert and verdict requests) is the UTM side's clock when it judged the change: the moment the
alert needed mailing, its *arrival* (CONTRACT.md, "Mail timing"). The urgent wait runs from there,
not from when the mail timing happened to read the request a hop later.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.correlate import AlertChange
from pipeline.models import Alert, Notice, Verdict, iso, parse_time

KINDS = ("alert", "verdict", "utm")


@dataclass(frozen=True, slots=True)
class MailRequest:
    kind: str
    tenant_id: str
    change: AlertChange | None = None
    notice: Notice | None = None
    at: datetime | None = None
    """When the change was judged (None: take the mail timing's clock)."""

    @classmethod
    def for_change(cls, change: AlertChange) -> "MailRequest":
        kind = "alert" if change.verdict is None else "verdict"
        return cls(kind, change.alert.tenant_id, change=change)

    @classmethod
    def for_notice(cls, notice: Notice) -> "MailRequest":
        return cls("utm", notice.tenant_id, notice=notice)

    def to_record(self) -> dict[str, Any]:
        if self.notice is not None:
            return {"type": "utm", "notice": self.notice.to_record()}
        assert self.change is not None
        record: dict[str, Any] = {"type": self.kind, "alert": self.change.alert.to_record()}
        if self.change.verdict is not None:
            record.update(notice=self.change.notice, previous_grade=self.change.previous_grade,
                          verdict=self.change.verdict.to_record())
        if self.at is not None:
            record["at"] = iso(self.at)
        return record

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "MailRequest":
        kind = data["type"]
        if kind == "utm":
            notice = Notice.from_record(data["notice"])
            return cls("utm", notice.tenant_id, notice=notice)
        if kind not in KINDS:
            raise ValueError(f"unknown mail request type {kind!r}")
        alert = Alert.from_record(data["alert"])
        at = parse_time(data["at"]) if data.get("at") else None
        if kind == "verdict":
            change = AlertChange(alert, data.get("previous_grade"), data.get("notice"), True,
                                 Verdict.from_record(data["verdict"]))
        else:
            change = AlertChange(alert, None, None)
        return cls(kind, alert.tenant_id, change=change, at=at)


def mail_requests(versions: list[AlertChange], notices: list[Notice]) -> list[MailRequest]:
    """What a step asks of mail timing: every alert version it publishes, and its mailed notices."""
    return [MailRequest.for_change(c) for c in versions] + [MailRequest.for_notice(n) for n in notices if n.mailed]
