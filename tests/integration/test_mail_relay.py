"""Per-recipient delivery through real SMTP servers (aiosmtpd): a deferred or refused recipient
answers alone while the others are delivered, the deferred one is sent alone later under the same
Message-ID; connections to the relay are reused; a relay slow for one domain does not slow the others."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.delivery import ACCEPTED, DEFERRED, REFUSED
from pipeline.mail.render import render_utm_mail
from pipeline.io.smtp import RelayPool, RelayUnreachable, TransientMailError, open_transport
from pipeline.models import Mail, Tenant
from tests.support.smtp import PickySink

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 0, 30, tzinfo=timezone.utc)
TOKYO = ZoneInfo("Asia/Tokyo")


def mail(utm_id: str, *to: str) -> Mail:
    return render_utm_mail("utm-down", Tenant("t-relay", "株式会社リレー", to), utm_id, T0, T0, TOKYO)


@pytest.fixture
def sink() -> Iterator[PickySink]:
    server = PickySink()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_one_recipient_deferred_is_answered_alone_and_sent_alone_later(sink: PickySink) -> None:
    m = mail("utm-1", "ok@a.example.jp", "busy@a.example.jp")
    sink.defer("busy@a.example.jp", 3600)
    transport = open_transport(sink.url, timeout=5)
    try:
        answers = transport.deliver(m)
        assert {r: a.outcome for r, a in answers.items()} == {"ok@a.example.jp": ACCEPTED, "busy@a.example.jp": DEFERRED}
        assert answers["busy@a.example.jp"].detail.startswith("450")
        sink.defer("busy@a.example.jp", 0)
        again = transport.deliver(m, ["busy@a.example.jp"])
        assert {r: a.outcome for r, a in again.items()} == {"busy@a.example.jp": ACCEPTED}
    finally:
        transport.close()
    assert [rcpts for _, rcpts in sink.envelopes] == [["ok@a.example.jp"], ["busy@a.example.jp"]]
    assert sink.deliveries_to("ok@a.example.jp") == sink.deliveries_to("busy@a.example.jp") == [m.message_id]
    assert len(sink.sessions) == 1  # the second transaction went on the same connection


def test_a_refused_recipient_is_refused_alone_and_a_mail_refused_by_all_raises_only_from_send(sink: PickySink) -> None:
    sink.refused.add("gone@a.example.jp")
    transport = open_transport(sink.url, timeout=5)
    try:
        answers = transport.deliver(mail("utm-2", "gone@a.example.jp", "ok@a.example.jp"))
        assert answers["gone@a.example.jp"].outcome == REFUSED and answers["gone@a.example.jp"].detail.startswith("550")
        assert answers["ok@a.example.jp"].outcome == ACCEPTED
        sink.defer("late@a.example.jp", 3600)
        alone = transport.deliver(mail("utm-3", "late@a.example.jp"))
        assert alone["late@a.example.jp"].outcome == DEFERRED
        with pytest.raises(TransientMailError):
            transport.send(mail("utm-3", "late@a.example.jp"))
        assert transport.deliver(mail("utm-4", "ok@a.example.jp"))["ok@a.example.jp"].outcome == ACCEPTED
    finally:
        transport.close()
    assert [rcpts for _, rcpts in sink.envelopes] == [["ok@a.example.jp"], ["ok@a.example.jp"]]


def test_a_stopped_relay_defers_every_recipient_of_the_pool() -> None:
    sink = PickySink()
    sink.start()
    url = sink.url
    sink.stop()
    pool = RelayPool(lambda: open_transport(url, timeout=2))

    async def run() -> dict:
        return await pool.deliver(mail("utm-5", "a@a.example.jp", "b@b.example.jp"), ["a@a.example.jp", "b@b.example.jp"])

    try:
        answers = asyncio.run(run())
    finally:
        pool.close()
    assert {a.outcome for a in answers.values()} == {DEFERRED} and set(answers) == {"a@a.example.jp", "b@b.example.jp"}
    assert pool.unreachable == "ConnectionRefusedError"


def test_a_relay_that_refuses_our_login_is_unreachable_not_a_refused_mail(sink: PickySink) -> None:
    """Credentials the relay refuses (or a relay that cannot log in) stop every mail: retried, never
    dead-lettered as if the customer's address were wrong."""
    transport = open_transport(sink.url.replace("smtp://", "smtp://user:wrong@") + "?insecure=1", timeout=5)
    try:
        with pytest.raises(RelayUnreachable):
            transport.deliver(mail("utm-6", "a@a.example.jp"))
    finally:
        transport.close()
    assert sink.received() == []


def test_the_pool_reuses_its_connections(sink: PickySink) -> None:
    pool = RelayPool(lambda: open_transport(sink.url, timeout=5), size=4)

    async def run() -> None:
        for n in range(10):
            answers = await pool.deliver(mail(f"utm-{n}", "x@a.example.jp"), ["x@a.example.jp"])
            assert answers["x@a.example.jp"].outcome == ACCEPTED

    try:
        asyncio.run(run())
    finally:
        pool.close()
    assert len(sink.received()) == 10
    assert pool.opened == 1 and len(sink.sessions) == 1


def test_a_relay_slow_for_one_domain_does_not_slow_the_others(sink: PickySink) -> None:
    """Six mails to a domain whose every RCPT TO takes 3 s, then six to other domains, at once: the
    slow domain holds two of the four connections, the others go on the other two meanwhile."""
    sink.slow_domains["slow.example.jp"] = 3.0
    pool = RelayPool(lambda: open_transport(sink.url, timeout=10), size=4, per_domain=2)
    done: dict[str, float] = {}

    async def one(m: Mail, to: str, started: float) -> None:
        answers = await pool.deliver(m, [to])
        assert answers[to].outcome == ACCEPTED, answers
        done[m.message_id] = time.monotonic() - started

    async def run() -> tuple[list[Mail], list[Mail]]:
        slow = [mail(f"utm-s{n}", "x@slow.example.jp") for n in range(6)]
        fast = [mail(f"utm-f{n}", f"x@fast{n % 3}.example.jp") for n in range(6)]
        started = time.monotonic()
        await asyncio.gather(*(one(m, "x@slow.example.jp", started) for m in slow),
                             *(one(m, m.to[0], started) for m in fast))
        return slow, fast

    try:
        slow, fast = asyncio.run(run())
    finally:
        pool.close()
    fast_times = sorted(done[m.message_id] for m in fast)
    slow_times = sorted(done[m.message_id] for m in slow)
    assert fast_times[-1] < 2.0, fast_times  # not behind any slow one (3 s each)
    assert slow_times[0] >= 3.0 and slow_times[-1] >= 9.0, slow_times  # two at a time: 3 rounds of 3 s
    assert pool.opened <= 4


def test_maildir_answers_every_recipient_accepted(tmp_path: Path) -> None:
    transport = open_transport(f"maildir://{tmp_path}")
    m = mail("utm-9", "a@a.example.jp", "b@b.example.jp")
    assert {a.outcome for a in transport.deliver(m, ["b@b.example.jp"]).values()} == {ACCEPTED}
    assert {a.outcome for a in transport.deliver(m).values()} == {ACCEPTED}
    assert len(list((tmp_path / "new").iterdir())) == 1
