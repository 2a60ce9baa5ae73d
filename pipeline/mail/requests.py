"""What the UTM side asks the tenant side to mail: the record of the internal topic
`mimamori-mail-requests` (key tenant_id; schema `schemas/mail-request.json`).

`alert`: an alert is new or changed (the mail timing decides whether and when it is mailed);
`verdict`: an analyst's verdict changed it (`notice` says which mail, if any, goes at once);
`utm`: a UTM status notice (utm-down, reminder, recovered).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.correlate import AlertChange
from pipeline.models import Alert, Notice, Verdict

KINDS = ("alert", "verdict", "utm")


@dataclass(frozen=True, slots=True)
class MailRequest:
    kind: str
    tenant_id: str
    change: AlertChange | None = None
    notice: Notice | None = None

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
        if kind == "verdict":
            change = AlertChange(alert, data.get("previous_grade"), data.get("notice"), True,
                                 Verdict.from_record(data["verdict"]))
        else:
            change = AlertChange(alert, None, None)
        return cls(kind, alert.tenant_id, change=change)


def mail_requests(versions: list[AlertChange], notices: list[Notice]) -> list[MailRequest]:
    """What a step asks of mail timing: every alert version it publishes, and its mailed notices."""
    return [MailRequest.for_change(c) for c in versions] + [MailRequest.for_notice(n) for n in notices if n.mailed]
