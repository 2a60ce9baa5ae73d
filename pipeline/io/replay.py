"""`mimamori replay`: the worker's logic over recorded lines, offline, on a clock that follows them.

The clock is the latest timestamp of the records accepted so far. Before an accepted record is
applied, the clock walks to its time, running the heartbeat checks (once a minute) and sending the
mails that fall due on the way, so mails due at or before a record's time go before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

import orjson

from pipeline.config import Settings
from pipeline.engine import Detector, DetectorStep, MailDesk
from pipeline.ingest import EventValidator
from pipeline.models import Mail, Registry, Rejection, iso, parse_time
from pipeline.notices.check import NoticeError, notice_from_wire
from pipeline.notices.windows import apply_notice
from pipeline.rules import Policy
from pipeline.io.sinks import mail_rows, registry_rows
from pipeline.io.store.backends import open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.io.store.sink import BatchingSink

CHECK_EVERY = timedelta(minutes=1)
UPKEEP_EVERY = timedelta(minutes=5)
"""As the worker: alerts no in-time event can join any more are set aside, so the alerts an event
is tried against stay those of the last correlation window, however long the replay."""
Emit = Callable[[dict], None]


class ReplayWriter:
    """Writes what replay decides through the worker's own sinks: rows to the store in idempotent
    batches (after migrating it), mails to a transport. Either may be absent."""

    def __init__(self, settings: Settings, registry: Registry, store_url: str | None = None,
                 mail_url: str | None = None) -> None:
        self.written_at = datetime.now(timezone.utc)
        self.store = None
        self.transport = None
        self.sinks: dict[str, BatchingSink] = {}
        if store_url:
            self.store = open_store(store_url, create=True)
            apply_migrations(self.store, str(settings.tz), self.written_at)
            self._add(registry_rows(registry, self.written_at))
        if mail_url:
            from pipeline.io.smtp import open_transport

            self.transport = open_transport(mail_url)

    def _add(self, rows_by_table: dict[str, list[dict]]) -> None:
        if self.store is None:
            return
        for table, rows in rows_by_table.items():
            sink = self.sinks.setdefault(table, BatchingSink(self.store, table))
            sink.add(rows, self.written_at)
            while sink.pending >= sink.max_rows:
                sink.flush(self.written_at)

    def rows(self, rows_by_table: dict[str, list[dict]]) -> None:
        self._add(rows_by_table)

    def mail(self, mail: Mail) -> None:
        if self.transport is not None:
            self.transport.send(mail)
        self._add(mail_rows([mail], self.written_at))

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.flush_all(self.written_at)
        if self.store is not None:
            self.store.close()
        if self.transport is not None:
            self.transport.close()


@dataclass
class ReplayCounts:
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    mails: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Replay:
    def __init__(self, settings: Settings, registry: Registry, policy: Policy, emit: Emit,
                 writer: ReplayWriter | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.policy = policy
        self.emit = emit
        self.writer = writer
        self.clock: datetime | None = None
        self.detector: Detector | None = None
        self.validator = EventValidator(registry)
        self.desk = MailDesk(settings, registry.tenants.get)
        self.next_check: datetime | None = None
        self.next_upkeep: datetime | None = None
        self.counts = ReplayCounts()

    def run(self, lines: Iterable[bytes], until: datetime | None = None) -> ReplayCounts:
        for number, line in enumerate(lines, start=1):
            record = _without_terminator(line)
            if record.strip():
                self.take(record, number)
        self.finish(until)
        return self.counts

    def take(self, value: bytes, line: int) -> None:
        self.counts.lines += 1
        if self._take_notice(value, line):
            return
        now = self.clock or _peek_time(value)
        checked = self.validator.check_record(value, now, topic="replay", partition=None, offset=line)
        if checked is None:
            return
        if isinstance(checked, Rejection):
            self.counts.rejected += 1
            self.counts.by_reason[checked.reason] = self.counts.by_reason.get(checked.reason, 0) + 1
            self.emit({"record": "rejection", "reason": checked.reason, "detail": checked.detail, "line": line})
            return
        self.counts.accepted += 1
        detector = self._detector(checked.ts)  # started by the first accepted record: a rejected one changes nothing
        self.advance(max(now, checked.ts))
        self._publish(detector.step_accepted([checked], self.clock))  # type: ignore[arg-type]  # advance() set it

    def _take_notice(self, value: bytes, line: int) -> bool:
        """A line that is a JSON object with a `notice_id` is a service notice (the record of the
        `service.notices` topic, schemas/notice.json): its maintenance window, if any, silences
        UTM-down judgements from then on (a later version moves it, a cancellation withdraws it).
        It does not move the clock. Returns whether the line was a notice."""
        if b'"notice_id"' not in value:
            return False
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(data, dict) or "notice_id" not in data:
            return False
        try:
            notice = notice_from_wire(value)
        except NoticeError as error:
            self.counts.rejected += 1
            self.counts.by_reason["schema"] = self.counts.by_reason.get("schema", 0) + 1
            self.emit({"record": "rejection", "reason": "schema", "detail": f"notice: {error}"[:500], "line": line})
            return True
        apply_notice(self.registry.maintenance, notice.notice_id, notice)
        self.emit({"record": "notice", "notice_id": notice.notice_id, "version": notice.version, "kind": notice.kind,
                   "starts_at": iso(notice.starts_at), "ends_at": iso(notice.ends_at),
                   "cancelled": notice.cancelled, "line": line})
        return True

    def advance(self, to: datetime) -> None:
        """Walk the clock to `to`, stopping at each heartbeat check and each mail that falls due."""
        assert self.detector is not None
        if self.clock is None or self.next_check is None or self.next_upkeep is None:
            self.clock, self.next_check, self.next_upkeep = to, to + CHECK_EVERY, to + UPKEEP_EVERY
            return
        while True:
            stops = [t for t in (self.desk.next_due(), self.next_check, self.next_upkeep) if t is not None and t <= to]
            if not stops:
                break
            self.clock = max(self.clock, min(stops))
            if self.next_check <= self.clock:
                self._publish(self.detector.tick(self.clock))
                self.next_check += CHECK_EVERY
            if self.next_upkeep <= self.clock:
                self._publish(self.detector.upkeep(self.clock))
                self.next_upkeep += UPKEEP_EVERY
            due = self.desk.next_due()
            if due is not None and due <= self.clock:
                self._send(self.desk.due(self.clock))
        self.clock = max(self.clock, to)

    def finish(self, until: datetime | None) -> None:
        """Run the clock on until every waiting mail went (and to `until` when given)."""
        if self.clock is None or self.detector is None:
            return
        while (due := self.desk.next_due()) is not None:
            self.advance(max(due, self.clock))
        if until is not None and until > self.clock:
            self.advance(until)
        if self.writer is not None:
            self.writer.close()

    def _detector(self, now: datetime) -> Detector:
        if self.detector is None:
            self.detector = Detector(self.settings, self.registry, self.policy, started_at=now)
        return self.detector

    def _publish(self, step: DetectorStep) -> None:
        """What a step publishes, by the worker's rule: alert lines for grade or status changes (the
        contract's replay lines), the same mail requests and store rows as the worker's."""
        assert self.clock is not None
        out = step.outputs
        self.counts.duplicates += out.duplicates
        self.counts.late += out.late
        for change in out.alert_changes:
            if change.significant:
                self.emit({"record": "alert", **change.alert.to_record()})
        for status in out.status_changes:
            self.emit({"record": "utm_status", "utm_id": status.utm_id, "tenant_id": status.tenant_id,
                       "status": status.status, "at": iso(status.at)})
        for incident in out.incidents:
            self.emit({"record": "incident", "kind": incident.kind, "state": incident.state,
                       "utms": incident.utms, "at": iso(incident.at)})
        mails = self.desk.step(step.mail_requests, self.clock).mails
        if self.writer is not None:
            self.writer.rows(step.rows)
        self._send(mails)

    def _send(self, mails: list[Mail]) -> None:
        for mail in mails:
            self.counts.mails += 1
            self.emit({"record": "mail", "kind": mail.kind, "tenant_id": mail.tenant_id, "to": list(mail.to),
                       "subject": mail.subject, "grade": mail.grade, "alert_ids": list(mail.alert_ids),
                       "utm_id": mail.utm_id, "message_id": mail.message_id, "sent_at": iso(mail.sent_at)})
            if self.writer is not None:
                self.writer.mail(mail)


def _without_terminator(line: bytes) -> bytes:
    """A record is its line without the one `\n` or `\r\n` that ends it (the size limit counts the rest)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def _peek_time(value: bytes) -> datetime:
    """The time of the first record, before any clock exists; a record without one is refused
    by validation anyway, so any time serves."""
    try:
        return parse_time(orjson.loads(value)["ts"])
    except Exception:
        return datetime.fromtimestamp(0).astimezone()
