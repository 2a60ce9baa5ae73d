"""The delivery schedule of pipeline/mail/delivery.py: per recipient pending, delivered, parked with
its next attempt (backoff with a ceiling, jitter from the Message-ID), refused, given up after the
give-up time; its state round-trips through JSON; the book never takes a known Message-ID twice."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from pipeline.config import ConfigError, Settings, load_settings
from pipeline.mail.delivery import (
    ACCEPTED, DEFERRED, DELIVERED, GAVE_UP, PARKED, PENDING, REFUSED, Answer, Delivery, DeliveryBook, RetryPolicy,
    oldest_open_by_grade, overdue, parked_by_grade,
)
from pipeline.mail.ledger import Retrier
from pipeline.models import Mail

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
POLICY = RetryPolicy(give_up=timedelta(days=3), retrier=Retrier(base=timedelta(seconds=5), cap=timedelta(minutes=10)))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def mail(message_id: str = "<m1@mimamori>", to: tuple[str, ...] = ("a@x.example", "b@y.example"),
         grade: int | None = 3, tenant: str = "t1") -> Mail:
    return Mail(message_id=message_id, kind="alert", tenant_id=tenant, to=to, subject="s", grade=grade,
                alert_ids=("al",), utm_id=None, sent_at=T0, raw="Subject: s\r\n\r\nbody\r\n", arrived_at=T0)


def deferred(*addresses: str) -> dict[str, Answer]:
    return {a: Answer(DEFERRED, "450 try later") for a in addresses}


def test_answers_by_smtp_code() -> None:
    assert Answer.of_code(250, "ok") == Answer(ACCEPTED, "250 ok")
    assert Answer.of_code(450, "greylisted").outcome == DEFERRED
    assert Answer.of_code(421).outcome == DEFERRED
    assert Answer.of_code(550, "no such user") == Answer(REFUSED, "550 no such user")


def test_a_new_mail_is_due_at_once_for_every_recipient() -> None:
    d = Delivery.new(mail(to=("a@x.example", "b@y.example", "a@x.example")), at(0))
    assert d.status == PENDING and d.due_at() == at(0)
    assert d.due(at(0)) == ["a@x.example", "b@y.example"]


def test_all_accepted_is_delivered_and_nothing_is_due_again() -> None:
    d = Delivery.new(mail(), at(0))
    applied = d.apply({"a@x.example": Answer.of_code(250), "b@y.example": Answer.of_code(250)}, at(1), POLICY)
    assert applied.delivered == ["a@x.example", "b@y.example"] and applied.next_at is None
    assert d.done and d.status == DELIVERED and d.due(at(10_000)) == []
    assert d.finished_at() == at(1)
    again = d.apply({"a@x.example": Answer.of_code(250)}, at(2), POLICY)
    assert again.delivered == [] and d.recipients["a@x.example"].attempts == 1


def test_one_recipient_deferred_is_retried_alone_with_backoff_up_to_the_ceiling() -> None:
    d = Delivery.new(mail(), at(0))
    first = d.apply({"a@x.example": Answer.of_code(250), "b@y.example": Answer.of_code(450, "mailbox busy")},
                    at(0), POLICY)
    assert first.delivered == ["a@x.example"] and first.parked == ["b@y.example"]
    assert d.status == PARKED and not d.done
    b = d.recipients["b@y.example"]
    assert b.status == PARKED and b.detail == "450 mailbox busy"
    # jitter takes up to 20% off; deterministic from the Message-ID and the attempt
    assert at(4) <= first.next_at <= at(5)
    assert first.next_at == at(0) + POLICY.retrier.delay(0, "<m1@mimamori>")
    assert d.due(first.next_at - timedelta(milliseconds=1)) == []
    assert d.due(first.next_at) == ["b@y.example"]  # the accepted one is never tried again
    now, gaps = first.next_at, []
    for _ in range(12):
        applied = d.apply(deferred("b@y.example"), now, POLICY)
        assert applied.next_at is not None
        gaps.append((applied.next_at - now).total_seconds())
        now = applied.next_at
    assert gaps[:4] == pytest.approx([10, 20, 40, 80], rel=0.2)
    assert all(0.8 * 600 <= gap <= 600 for gap in gaps[7:])  # the ceiling: 10 minutes
    assert d.recipients["b@y.example"].attempts == 13
    done = d.apply({"b@y.example": Answer.of_code(250)}, now, POLICY)
    assert done.delivered == ["b@y.example"] and d.status == DELIVERED and d.delivered_to() == ["a@x.example", "b@y.example"]


def test_recipients_deferred_together_are_retried_together() -> None:
    d = Delivery.new(mail(), at(0))
    applied = d.fail_all("ConnectionRefusedError", at(0), POLICY)
    assert sorted(applied.parked) == ["a@x.example", "b@y.example"]
    assert d.due(applied.next_at) == ["a@x.example", "b@y.example"]


def test_jitter_differs_between_mails_but_not_between_runs() -> None:
    one, two = Delivery.new(mail("<m1@mimamori>"), at(0)), Delivery.new(mail("<m2@mimamori>"), at(0))
    first = one.fail_all("450", at(0), POLICY).next_at
    assert first != two.fail_all("450", at(0), POLICY).next_at
    assert Delivery.new(mail("<m1@mimamori>"), at(0)).fail_all("450", at(0), POLICY).next_at == first


def test_a_5xx_recipient_is_refused_for_good_and_the_other_still_delivered() -> None:
    d = Delivery.new(mail(), at(0))
    applied = d.apply({"a@x.example": Answer.of_code(550, "no such user"), "b@y.example": Answer.of_code(250)},
                      at(0), POLICY)
    assert [r.address for r in applied.failed] == ["a@x.example"] and applied.delivered == ["b@y.example"]
    assert d.recipients["a@x.example"].status == REFUSED and d.done and d.status == "failed"


def test_the_mail_itself_refused_fails_every_due_recipient() -> None:
    d = Delivery.new(mail(), at(0))
    applied = d.fail_all("554 message rejected", at(0), POLICY, permanent=True)
    assert len(applied.failed) == 2 and d.done and applied.next_at is None


def test_give_up_after_the_configured_time_with_the_last_attempt_at_that_time() -> None:
    policy = replace(POLICY, give_up=timedelta(minutes=30))
    d = Delivery.new(mail(to=("a@x.example",)), at(0))
    now, tries = at(0), []
    while True:
        tries.append(now)
        applied = d.apply(deferred("a@x.example"), now, policy)
        if applied.next_at is None:
            break
        now = applied.next_at
        assert now <= at(1800)
    assert tries[-1] == at(1800)  # not a backoff step after the deadline
    assert [r.status for r in applied.failed] == [GAVE_UP] and d.done and d.status == "failed"
    assert 8 <= len(tries) <= 14


def test_state_round_trips_through_json_and_keeps_the_schedule() -> None:
    d = Delivery.new(mail(), at(0))
    d.apply({"a@x.example": Answer.of_code(250), "b@y.example": Answer.of_code(451, "greylisted")}, at(0), POLICY)
    back = Delivery.from_state(orjson.loads(orjson.dumps(d.to_state())))
    assert back == d
    assert back.due_at() == d.due_at() and back.status == PARKED


def test_the_book_takes_a_message_id_once_and_keeps_the_mail_only_while_open() -> None:
    book = DeliveryBook()
    taken = book.take(mail(), at(0))
    assert taken is not None
    key, d = taken
    assert book.take(mail(), at(1)) is None  # the same mail put in the outbox again
    entry = book.entry(key)
    assert entry is not None and entry["mail"]["message_id"] == "<m1@mimamori>"
    d.apply(deferred("a@x.example", "b@y.example"), at(0), POLICY)
    saved = orjson.loads(orjson.dumps(book.entry(key)))

    restored = DeliveryBook()
    restored.restore([(key, saved), ("t1\x1f<old@mimamori>", 1.7e9)])
    assert set(restored.open()) == {key} and restored.mail(key) == mail()
    assert restored.take(mail("<old@mimamori>"), at(2)) is None  # a delivery recorded before this schema
    [due] = overdue(restored.open().values(), at(3600))
    due.apply({"a@x.example": Answer.of_code(250), "b@y.example": Answer.of_code(250)}, at(3600), POLICY)
    done = restored.entry(key)
    assert done is not None and "mail" not in done and key not in restored.mails
    assert restored.take(mail(), at(3601)) is None
    assert sorted(restored.forget_before(at(3600))) == ["t1\x1f<old@mimamori>"]
    assert restored.forget_before(at(3601)) == [key]
    assert restored.take(mail(), at(3602)) is not None
    restored.restore([(key, None)])
    assert key not in restored


def test_metrics_views_by_grade() -> None:
    urgent = Delivery.new(mail("<u@m>", grade=3), at(10))
    urgent.fail_all("450", at(10), POLICY)
    low = Delivery.new(mail("<l@m>", grade=1), at(5))
    report = Delivery.new(replace(mail("<r@m>", grade=None), sent_at=at(2)), at(20))
    done = Delivery.new(mail("<d@m>", grade=3), at(0))
    done.fail_all("554", at(0), POLICY, permanent=True)
    everything = [urgent, low, report, done]
    assert oldest_open_by_grade(everything) == {"3": T0, "1": T0, "none": at(2)}
    assert parked_by_grade(everything) == {"3": 1}
    assert [d.message_id for d in overdue(everything, at(20))] == ["<l@m>", "<u@m>", "<r@m>"]
    assert [d.message_id for d in overdue(everything, at(13))] == ["<l@m>"]


def test_give_up_is_configured_by_its_variable() -> None:
    assert Settings().mail_give_up == timedelta(days=3)
    assert load_settings({"MIMAMORI_MAIL_GIVE_UP": "90s"}).mail_give_up == timedelta(seconds=90)
    with pytest.raises(ConfigError, match="MIMAMORI_MAIL_GIVE_UP"):
        load_settings({"MIMAMORI_MAIL_GIVE_UP": "3 days"})
