"""The test sink's rule for repeated mails (tests/support/services.py SmtpSink.unexplained_repeats):
the integration tests that kill workers lean on it, so it must tell the one admitted repeat (a mail
accepted just before a kill, again under its Message-ID) from every other."""
from __future__ import annotations

from email.message import EmailMessage

from tests.support.services import SmtpSink, copies_unexplained_by_kills


def sink_with(*arrivals: tuple[str, float, str]) -> SmtpSink:
    sink = SmtpSink(port=1)
    for message_id, at, kind in arrivals:
        message = EmailMessage()
        message["Message-ID"], message["X-Mimamori-Kind"] = message_id, kind
        sink.messages.append(message)
        sink.arrivals.append(at)
    return sink


def test_a_mail_accepted_just_before_a_kill_may_come_once_more() -> None:
    sink = sink_with(("<a@x>", 100.0, "alert"), ("<b@x>", 101.0, "alert"), ("<b@x>", 120.0, "alert"))
    assert sink.unexplained_repeats([103.0]) == []


def test_a_repeat_with_no_kill_shortly_after_its_first_arrival_is_reported() -> None:
    sink = sink_with(("<b@x>", 101.0, "alert"), ("<b@x>", 150.0, "alert"))
    assert sink.unexplained_repeats([140.0], window=15.0) == ["<b@x>"]
    assert sink.unexplained_repeats([]) == ["<b@x>"]
    assert sink.unexplained_repeats([99.0]) == ["<b@x>"]  # a kill before it arrived explains nothing


def test_three_arrivals_or_more_repeats_than_kills_are_reported() -> None:
    thrice = sink_with(*[("<b@x>", at, "alert") for at in (101.0, 110.0, 120.0)])
    assert thrice.unexplained_repeats([102.0, 111.0]) == ["<b@x>"]
    two = sink_with(("<a@x>", 100.0, "alert"), ("<b@x>", 100.5, "alert"), ("<a@x>", 110.0, "alert"),
                    ("<b@x>", 110.0, "alert"))
    assert sorted(two.unexplained_repeats([101.0])) == ["<a@x>", "<b@x>"]
    assert two.unexplained_repeats([101.0, 101.5]) == []


def test_only_the_kind_asked_for_is_judged() -> None:
    sink = sink_with(("<r@x>", 100.0, "monthly-report"), ("<a@x>", 100.0, "alert"), ("<a@x>", 200.0, "alert"))
    assert sink.unexplained_repeats([], kind="monthly-report") == []
    assert sink.unexplained_repeats([], kind="alert") == ["<a@x>"]


def test_the_kill_loops_rule_lets_each_copy_but_the_last_be_followed_by_a_kill() -> None:
    """The kill loop's rule (several mails in flight at a kill, a mail may be in flight at two)."""
    arrivals = [("<a@x>", 100.0), ("<b@x>", 100.5), ("<a@x>", 110.0), ("<b@x>", 110.5), ("<a@x>", 120.0)]
    assert copies_unexplained_by_kills(arrivals, [101.0, 111.0]) == {}
    assert copies_unexplained_by_kills(arrivals, [101.0]) == {"<a@x>": 3}
    assert copies_unexplained_by_kills(arrivals, []) == {"<a@x>": 3, "<b@x>": 2}
