"""The delivery of one mail, per recipient: what is left to do, when, and what was done (pure).

A mail taken from the outbox is *pending* for each of its recipients. One attempt hands the mail to
the relay for the recipients due; each recipient's answer moves it on its own: accepted (2xx) ->
*delivered*; refused for good (5xx) -> *refused*; deferred (4xx, or the relay unreachable) ->
*parked* with its next attempt, backing off up to a ceiling, with a jitter drawn from the
Message-ID (recipients deferred together are retried together, in one SMTP transaction, under the
same Message-ID). A recipient still deferred once `give_up` has passed since the mail was taken is
*gave_up*; refused and gave-up recipients are dead-lettered by the driver. The last attempt is made
at the give-up time itself, so a mail is dead-lettered on time, not a backoff step later.

Nothing here reads a clock or talks to a server: the sender passes `now` and the relay's answers,
and saves `to_state()` (the ledger entry of the mail) in its partition's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from pipeline.mail.ledger import Retrier
from pipeline.models import Mail, iso, parse_time
from pipeline.step import state_key

PENDING, PARKED, DELIVERED, REFUSED, GAVE_UP = "pending", "parked", "delivered", "refused", "gave_up"
OPEN = (PENDING, PARKED)
FAILED = (REFUSED, GAVE_UP)

ACCEPTED, DEFERRED = "accepted", "deferred"
"""Answers of one attempt for one recipient (with REFUSED)."""

DEFAULT_GIVE_UP = timedelta(days=3)
DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Answer:
    """What the relay said for one recipient in one attempt: `outcome` is ACCEPTED, DEFERRED or
    REFUSED; `detail` the server's code and text (never the mail itself)."""

    outcome: str
    detail: str = ""

    @classmethod
    def of_code(cls, code: int, text: str = "") -> "Answer":
        detail = f"{code} {text}".strip()
        if 200 <= code < 300:
            return cls(ACCEPTED, detail)
        return cls(REFUSED if 500 <= code < 600 else DEFERRED, detail)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff per attempt (base doubling up to the ceiling, deterministic jitter) and the give-up time."""

    give_up: timedelta = DEFAULT_GIVE_UP
    retrier: Retrier = field(default_factory=Retrier)

    @property
    def ceiling(self) -> timedelta:
        return self.retrier.cap


@dataclass(slots=True)
class Recipient:
    address: str
    status: str = PENDING
    attempts: int = 0
    next_at: datetime | None = None
    """When it is tried next (pending and parked recipients)."""
    at: datetime | None = None
    """When it was delivered, refused or given up."""
    detail: str = ""
    """The relay's last answer for it."""

    def to_state(self) -> list[Any]:
        return [self.status, self.attempts, iso(self.next_at), iso(self.at), self.detail]

    @classmethod
    def from_state(cls, address: str, state: list[Any]) -> "Recipient":
        status, attempts, next_at, at, detail = state
        return cls(address, status, int(attempts), parse_time(next_at) if next_at else None,
                   parse_time(at) if at else None, detail)


@dataclass(slots=True)
class Applied:
    """What one attempt's answers changed, for the driver: the ledger, the dead letters, metrics."""

    delivered: list[str] = field(default_factory=list)
    failed: list[Recipient] = field(default_factory=list)
    """Recipients refused for good or given up by this attempt (to dead-letter now)."""
    parked: list[str] = field(default_factory=list)
    next_at: datetime | None = None
    """The mail's next attempt, None when nothing is left to do."""


@dataclass(slots=True)
class Delivery:
    message_id: str
    tenant_id: str
    kind: str
    grade: int | None
    queued_at: datetime
    """When the sender took the mail: the give-up time counts from here."""
    recipients: dict[str, Recipient]
    arrived_at: datetime | None = None
    """When what the mail tells reached the mail desk (for the latency metric)."""
    sent_at: datetime | None = None
    """The mail's own time (when it was put in the outbox): its age as an undelivered mail."""

    @classmethod
    def new(cls, mail: Mail, now: datetime) -> "Delivery":
        addresses = dict.fromkeys(mail.to)  # ordered, without repeats
        return cls(mail.message_id, mail.tenant_id, mail.kind, mail.grade, now,
                   {a: Recipient(a, next_at=now) for a in addresses}, mail.arrived_at, mail.sent_at)

    # --- where it stands ----------------------------------------------------------------------

    @property
    def open(self) -> list[Recipient]:
        return [r for r in self.recipients.values() if r.status in OPEN]

    @property
    def done(self) -> bool:
        return not self.open

    @property
    def parked(self) -> bool:
        return any(r.status == PARKED for r in self.recipients.values())

    @property
    def status(self) -> str:
        """`pending` (not tried yet), `parked` (waiting for a retry), or, when done, `delivered`
        (every recipient) or `failed` (at least one refused or given up)."""
        if not self.done:
            return PARKED if self.parked else PENDING
        return DELIVERED if all(r.status == DELIVERED for r in self.recipients.values()) else "failed"

    @property
    def attempts(self) -> int:
        return max((r.attempts for r in self.recipients.values()), default=0)

    def due_at(self) -> datetime | None:
        return min((r.next_at for r in self.open if r.next_at is not None), default=None)

    def due(self, now: datetime) -> list[str]:
        """The recipients to try at `now`, in the mail's order."""
        return [r.address for r in self.open if r.next_at is not None and r.next_at <= now]

    def delivered_to(self) -> list[str]:
        return [r.address for r in self.recipients.values() if r.status == DELIVERED]

    # --- one attempt ---------------------------------------------------------------------------

    def apply(self, answers: Mapping[str, Answer], now: datetime, policy: RetryPolicy) -> Applied:
        """The relay's answers of an attempt made at `now`, per recipient. An open recipient without
        an answer is untouched (it was not due); an answer for a closed one changes nothing (a
        recipient delivered once is never delivered again)."""
        applied = Applied()
        deadline = self.queued_at + policy.give_up
        for address, answer in answers.items():
            recipient = self.recipients.get(address)
            if recipient is None or recipient.status not in OPEN:
                continue
            recipient.attempts += 1
            recipient.detail = answer.detail[:DETAIL_CHARS]
            if answer.outcome == ACCEPTED:
                recipient.status, recipient.at, recipient.next_at = DELIVERED, now, None
                applied.delivered.append(address)
            elif answer.outcome == REFUSED or now >= deadline:
                recipient.status = REFUSED if answer.outcome == REFUSED else GAVE_UP
                recipient.at, recipient.next_at = now, None
                applied.failed.append(recipient)
            else:
                recipient.status = PARKED
                retry = now + policy.retrier.delay(recipient.attempts - 1, self.message_id)
                recipient.next_at = min(retry, deadline) if now < deadline else retry
                applied.parked.append(address)
        applied.next_at = self.due_at()
        return applied

    def fail_all(self, detail: str, now: datetime, policy: RetryPolicy, *, permanent: bool = False) -> Applied:
        """The whole attempt failed (the relay unreachable, or refusing the mail itself) for every
        recipient that was due."""
        outcome = REFUSED if permanent else DEFERRED
        return self.apply({a: Answer(outcome, detail) for a in self.due(now)}, now, policy)

    # --- saved state (the mail's ledger entry) ------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "tenant_id": self.tenant_id, "kind": self.kind, "grade": self.grade,
            "queued_at": iso(self.queued_at), "arrived_at": iso(self.arrived_at), "sent_at": iso(self.sent_at),
            "recipients": {a: r.to_state() for a, r in self.recipients.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Delivery":
        arrived, sent = state.get("arrived_at"), state.get("sent_at")
        return cls(state["message_id"], state["tenant_id"], state["kind"], state.get("grade"),
                   parse_time(state["queued_at"]),
                   {a: Recipient.from_state(a, r) for a, r in state["recipients"].items()},
                   parse_time(arrived) if arrived else None, parse_time(sent) if sent else None)

    def finished_at(self) -> datetime | None:
        """When the last recipient was closed (None while one is open): the ledger keeps the entry
        for a while after it."""
        if not self.done:
            return None
        return max((r.at for r in self.recipients.values() if r.at is not None), default=self.queued_at)


def overdue(deliveries: Iterable[Delivery], now: datetime) -> list[Delivery]:
    """The deliveries with a recipient due at `now`, earliest due first (then by Message-ID)."""
    due = [(d.due_at(), d.message_id, d) for d in deliveries]
    return [d for at, _, d in sorted((x for x in due if x[0] is not None and x[0] <= now),
                                     key=lambda x: (x[0], x[1]))]


class DeliveryBook:
    """The sender's ledger of one partition: each mail it took, by `state_key(tenant, Message-ID)`.

    An open delivery is saved with its mail (so a restarted worker can retry a parked mail whose
    outbox record is long committed); a finished one without it, kept `keep` after it finished so
    that the same mail put in the outbox again is never sent again. Entries written before
    deliveries were tracked per recipient (a bare delivery time) read as delivered."""

    def __init__(self) -> None:
        self.deliveries: dict[str, Delivery] = {}
        self.mails: dict[str, Mail] = {}
        self.legacy: dict[str, float] = {}

    @staticmethod
    def key_of(tenant_id: str, message_id: str) -> str:
        return state_key(tenant_id, message_id)

    def __contains__(self, key: str) -> bool:
        return key in self.deliveries or key in self.legacy

    def take(self, mail: Mail, now: datetime) -> tuple[str, Delivery] | None:
        """Start delivering a mail from the outbox; None when this Message-ID is already known
        (delivered, failed, or still on its way)."""
        key = self.key_of(mail.tenant_id, mail.message_id)
        if key in self:
            return None
        delivery = Delivery.new(mail, now)
        self.deliveries[key] = delivery
        self.mails[key] = mail
        return key, delivery

    def entry(self, key: str) -> dict[str, Any] | None:
        """The saved value of a key after a change (None: removed)."""
        delivery = self.deliveries.get(key)
        if delivery is None:
            return None
        if delivery.done:
            self.mails.pop(key, None)
            return {"delivery": delivery.to_state()}
        return {"delivery": delivery.to_state(), "mail": self.mails[key].to_record()}

    def restore(self, items: Iterable[tuple[str, Any]]) -> None:
        for key, value in items:
            self.deliveries.pop(key, None)
            self.mails.pop(key, None)
            self.legacy.pop(key, None)
            if value is None:
                continue
            if isinstance(value, (int, float)):
                self.legacy[key] = float(value)
                continue
            delivery = Delivery.from_state(value["delivery"])
            self.deliveries[key] = delivery
            if not delivery.done:
                self.mails[key] = Mail.from_record(value["mail"])

    def open(self) -> dict[str, Delivery]:
        return {k: d for k, d in self.deliveries.items() if not d.done}

    def mail(self, key: str) -> Mail:
        return self.mails[key]

    def forget_before(self, horizon: datetime) -> list[str]:
        """Drop finished entries that finished before `horizon`; returns their keys (to remove)."""
        old = [k for k, at in self.legacy.items() if at < horizon.timestamp()]
        old += [k for k, d in self.deliveries.items()
                if (finished := d.finished_at()) is not None and finished < horizon]
        for key in old:
            self.legacy.pop(key, None)
            self.deliveries.pop(key, None)
        return old


def grade_label(grade: int | None) -> str:
    """A mail's grade as a metric label: its alerts' highest grade, `none` for mails without one."""
    return str(grade) if grade is not None else "none"


def oldest_open_by_grade(deliveries: Iterable[Delivery]) -> dict[str, datetime]:
    """Per grade label, the time (`sent_at`, else when taken) of the oldest unfinished mail."""
    oldest: dict[str, datetime] = {}
    for d in deliveries:
        if not d.done:
            label, since = grade_label(d.grade), d.sent_at or d.queued_at
            if label not in oldest or since < oldest[label]:
                oldest[label] = since
    return oldest


def parked_by_grade(deliveries: Iterable[Delivery]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in deliveries:
        if not d.done and d.parked:
            counts[grade_label(d.grade)] = counts.get(grade_label(d.grade), 0) + 1
    return counts
