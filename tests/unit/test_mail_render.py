from datetime import date, datetime, timezone
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.render import defang, render_alert_mail, render_utm_mail, render_verdict_mail
from pipeline.models import Alert, Event, Tenant, Verdict

T0 = datetime(2024, 5, 1, 0, 30, tzinfo=timezone.utc)
TOKYO = ZoneInfo("Asia/Tokyo")
EVIL_URL = "http://evil.example.com/<script>alert(1)</script>\r\nBcc: victim@example.org\r\n\r\nbody" + "A" * 10_000
EVIL_SIGNATURE = "ET TROJAN <img src=x onerror=alert(1)>\r\nX-Injected: yes\x00\u202e http://c2.example.net/gate.php"


def tenant(locale: str = "ja", emails: tuple[str, ...] = ("sec@example.co.jp", "it@example.co.jp")) -> Tenant:
    return Tenant("t1", "株式会社みまもり\r\nBcc: x@example.org", emails, locale=locale)


def alert(alert_id: str, grade: int, insured: bool = False) -> Alert:
    return Alert(
        alert_id=alert_id, tenant_id="t1", utm_id="utm-1", host_ip="192.168.1.20", host_mac="00:11:22:33:44:55",
        grade=grade, rule="default", title="Malware infection suspected", first_seen=T0, last_seen=T0,
        event_count=4, categories=("malware", "c2"), recommended_action="full_scan",
        status="investigating" if grade == 0 else "open",
        insurance_eligible_until=date(2024, 5, 31) if insured else None,
    )


def evil_event() -> Event:
    return Event(
        event_id="e1", utm_id="utm-1", tenant_id="t1", ts=T0, type="url", action="allowed", direction="outbound",
        src_ip="192.168.1.20", dst_ip="203.0.113.5", received_at=T0, url=EVIL_URL, domain="evil.example.com",
        file_name="invoice.pdf.exe\r\nSubject: pwned", signature=EVIL_SIGNATURE,
    )


def parse(raw: str) -> EmailMessage:
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def test_defang() -> None:
    assert defang("http://example.com") == "hxxp://example[.]com"
    assert defang("https://a.example.com/x.exe") == "hxxps://a[.]example[.]com/x[.]exe"
    assert defang("evil.exe") == "evil[.]exe"
    assert defang(defang("http://example.com/evil.exe")) == defang("http://example.com/evil.exe")


@pytest.mark.parametrize("grades,stars", [((1, 3, 2), "★★★"), ((2, 1), "★★☆"), ((1,), "★☆☆"), ((0, 1), "★☆☆")])
@pytest.mark.parametrize("locale", ["ja", "en"])
def test_subject_has_stars_of_highest_grade_and_count(grades: tuple[int, ...], stars: str, locale: str) -> None:
    alerts = [alert(f"a{n}", g) for n, g in enumerate(grades)]
    mail = render_alert_mail(tenant(locale), alerts, None, T0, TOKYO)
    message = parse(mail.raw)
    assert stars in message["Subject"]
    assert "調査中" not in message["Subject"]
    assert str(len(grades)) in message["Subject"]
    assert message["X-Mimamori-Grade"] == str(max(grades)) == str(mail.grade)
    assert mail.subject == message["Subject"]


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_all_under_investigation(locale: str) -> None:
    mail = render_alert_mail(tenant(locale), [alert("a0", 0), alert("a1", 0)], None, T0, TOKYO)
    message = parse(mail.raw)
    assert "※調査中※" in message["Subject"]
    assert "★" not in message["Subject"]
    assert "※調査中※" in text_of(message)
    assert message["X-Mimamori-Grade"] == "0"


@pytest.mark.parametrize("locale,scan,insurance,caution", [
    ("ja", "フルスキャン", "2024-05-31 までに保険金請求", "注意"),
    ("en", "full antivirus scan", "file your claim by 2024-05-31", "take care"),
])
def test_body_tells_what_to_do_per_grade(locale: str, scan: str, insurance: str, caution: str) -> None:
    alerts = [alert("a3", 3, insured=True), alert("a2", 2), alert("a1", 1), alert("a0", 0)]
    body = text_of(parse(render_alert_mail(tenant(locale), alerts, None, T0, TOKYO).raw))
    sections = body.split("■ " if locale == "ja" else "* ")[1:]
    assert [s.split(" ")[0] for s in sections] == ["★★★", "★★☆", "★☆☆", "※調査中※"]
    assert scan in sections[0] and insurance in sections[0]
    assert scan in sections[1] and insurance not in sections[1]
    assert scan not in sections[2] and caution in sections[2]
    assert "※調査中※" in sections[3]
    assert "2024-05-01 09:30:00 JST" in sections[0]
    assert "192.168.1.20" in sections[0] and "00:11:22:33:44:55" in sections[0] and "utm-1" in sections[0]


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_insurance_deadline_only_when_eligible(locale: str) -> None:
    body = text_of(parse(render_alert_mail(tenant(locale), [alert("a3", 3)], None, T0, TOKYO).raw))
    assert "2024-05-31" not in body


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_headers_of_an_alert_mail(locale: str) -> None:
    emails = ("a@example.jp", "b@example.jp", "c@example.jp", "d@example.jp")
    mail = render_alert_mail(tenant(locale, emails), [alert("a1", 1), alert("a2", 2)], None, T0, TOKYO,
                             sender="noreply@mimamori.example")
    message = parse(mail.raw)
    assert [a.addr_spec for a in message["To"].addresses] == list(emails[:3]) == list(mail.to)
    assert message["From"] == "noreply@mimamori.example"
    assert parsedate_to_datetime(message["Date"]) == T0
    assert message["Date"].endswith("+0900")
    assert message["X-Mimamori-Kind"] == "alert"
    assert message["X-Mimamori-Tenant"] == "t1"
    assert [a.strip() for a in message["X-Mimamori-Alerts"].split(",")] == ["a2", "a1"] == list(mail.alert_ids)
    assert message["Message-ID"] == mail.message_id
    assert mail.sent_at == T0
    assert "=?utf-8?" in mail.raw.split("\r\n\r\n")[0]
    assert mail.raw.isascii()
    assert message.get_body(("html",)) is not None


def test_message_id_is_stable_and_follows_the_grades() -> None:
    first = render_alert_mail(tenant(), [alert("a1", 1), alert("a2", 2)], None, T0, TOKYO)
    again = render_alert_mail(tenant(), [alert("a2", 2), alert("a1", 1)], None, T0, TOKYO)
    regraded = render_alert_mail(tenant(), [alert("a1", 3), alert("a2", 2)], None, T0, TOKYO)
    assert first.message_id == again.message_id
    assert first.raw.split("boundary")[0] == again.raw.split("boundary")[0]
    assert regraded.message_id != first.message_id
    assert first.message_id.startswith("<alert.") and first.message_id.endswith("@mimamori>")


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_malicious_event_fields_come_out_defanged_and_harmless(locale: str) -> None:
    mail = render_alert_mail(tenant(locale), [alert("a1", 2)], {"a1": [evil_event()]}, T0, TOKYO)
    message = parse(mail.raw)
    header_names = [name.lower() for name in message.keys()]
    assert "bcc" not in header_names and "x-injected" not in header_names and "subject" in header_names
    assert header_names.count("subject") == 1
    body = text_of(message)
    assert "hxxp://evil[.]example[.]com/" in body
    assert "evil[.]example[.]com" in body
    assert "invoice[.]pdf[.]exe Subject: pwned" in body
    assert "hxxp://c2[.]example[.]net/gate[.]php" in body
    assert "http://" not in body and "evil.example.com" not in body
    assert "\x00" not in body and "\u202e" not in body
    assert not any(line.lower().startswith(("bcc:", "x-injected:", "subject:")) for line in body.splitlines())
    assert len(body) < 5000
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


def test_alert_mail_refuses_another_tenants_alert() -> None:
    other = Alert(**{**{f: getattr(alert("b", 1), f) for f in Alert.__slots__}, "tenant_id": "t2"})
    with pytest.raises(ValueError):
        render_alert_mail(tenant(), [alert("a", 1), other], None, T0, TOKYO)
    with pytest.raises(ValueError):
        render_alert_mail(tenant(), [], None, T0, TOKYO)


@pytest.mark.parametrize("locale,words", [
    ("ja", {"utm-down": "停止", "utm-down-reminder": "停止したまま", "utm-recovered": "復旧"}),
    ("en", {"utm-down": "stopped", "utm-down-reminder": "stopped since", "utm-recovered": "back online"}),
])
@pytest.mark.parametrize("kind", ["utm-down", "utm-down-reminder", "utm-recovered"])
def test_utm_mails(kind: str, locale: str, words: dict[str, str]) -> None:
    since = datetime(2024, 4, 30, 23, 0, tzinfo=timezone.utc)
    mail = render_utm_mail(kind, tenant(locale), "utm-1", since, T0, TOKYO)
    message = parse(mail.raw)
    assert message["X-Mimamori-Kind"] == kind == mail.kind
    assert message["X-Mimamori-Utm"] == "utm-1" == mail.utm_id
    assert "X-Mimamori-Grade" not in message
    assert "utm-1" in message["Subject"]
    body = text_of(message)
    assert words[kind] in body
    assert "2024-05-01 08:00:00 JST" in body
    assert render_utm_mail(kind, tenant(locale), "utm-1", since, T0, TOKYO).message_id == mail.message_id


def test_utm_message_ids_differ_by_outage_and_reminder_day() -> None:
    since = datetime(2024, 4, 30, 23, 0, tzinfo=timezone.utc)
    later = datetime(2024, 5, 2, 0, 30, tzinfo=timezone.utc)
    down = render_utm_mail("utm-down", tenant(), "utm-1", since, T0, TOKYO).message_id
    assert render_utm_mail("utm-down", tenant(), "utm-1", since, later, TOKYO).message_id == down
    assert render_utm_mail("utm-down", tenant(), "utm-1", later, later, TOKYO).message_id != down
    day1 = render_utm_mail("utm-down-reminder", tenant(), "utm-1", since, T0, TOKYO).message_id
    day2 = render_utm_mail("utm-down-reminder", tenant(), "utm-1", since, later, TOKYO).message_id
    assert len({down, day1, day2}) == 3
    with pytest.raises(ValueError):
        render_utm_mail("alert", tenant(), "utm-1", since, T0, TOKYO)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_investigation_report(locale: str) -> None:
    note = "The traffic was a software update.\r\nNo action needed.\x07"
    mail = render_verdict_mail("investigation-report", tenant(locale), alert("a0", 0),
                               Verdict("a0", 0, note, T0), T0, TOKYO)
    message = parse(mail.raw)
    assert message["X-Mimamori-Kind"] == "investigation-report"
    assert message["X-Mimamori-Alerts"] == "a0"
    body = text_of(message)
    assert "The traffic was a software update.\nNo action needed." in body
    assert "\x07" not in body
    assert ("脅威は確認されませんでした" if locale == "ja" else "no threat was found") in body
    serious = render_verdict_mail("investigation-report", tenant(locale), alert("a0", 0),
                                  Verdict("a0", 2, "Infected.", T0), T0, TOKYO)
    assert "★★☆" in parse(serious.raw)["Subject"]
    assert serious.message_id != mail.message_id


@pytest.mark.parametrize("locale,scan", [("ja", "フルスキャン"), ("en", "full antivirus scan")])
def test_regrade(locale: str, scan: str) -> None:
    regraded = alert("a2", 3, insured=True)
    mail = render_verdict_mail("regrade", tenant(locale), regraded, Verdict("a2", 3, "Confirmed.", T0), T0, TOKYO,
                               previous_grade=2)
    message = parse(mail.raw)
    assert "★★★" in message["Subject"]
    assert message["X-Mimamori-Grade"] == "3"
    body = text_of(message)
    assert "★★☆" in body and "★★★" in body and scan in body and "2024-05-31" in body
    with pytest.raises(ValueError):
        render_verdict_mail("alert", tenant(locale), regraded, Verdict("a2", 3, "", T0), T0, TOKYO)


# --- one function for every text from events (issue 20) ---------------------------------------------

def test_event_text_defangs_every_url_host_and_address_and_keeps_the_rest_readable() -> None:
    from pipeline.mail.text import event_text

    cases = {
        "https://evil.example/fix": "hxxps://evil[.]example/fix",
        "Call https://evil.example/fix now": "Call hxxps://evil[.]example/fix now",
        "evil.example": "evil[.]example",
        "invoice.pdf.exe": "invoice[.]pdf[.]exe",
        "ET MALWARE beacon to 198.51.100.7": "ET MALWARE beacon to 198[.]51[.]100[.]7",
        "例え.テスト": "例え[.]テスト",
        "ransomware": "ransomware",
        "Firmware v2.0, e.g. CVE-2024.1234": "Firmware v2.0, e.g. CVE-2024.1234",
    }
    for raw, shown in cases.items():
        assert event_text(raw) == shown
        assert event_text(shown) == shown  # applying it twice changes nothing
    assert event_text("a\r\nBcc: x@evil.example", 10) == "a Bcc: x@…"


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_categories_and_titles_from_events_are_defanged_in_both_parts(locale: str) -> None:
    crafted = Alert(**{**{f: getattr(alert("a1", 3), f) for f in Alert.__slots__},
                       "title": "Fix at https://evil.example/fix", "categories": ("https://evil.example/fix", "c2")})
    message = parse(render_alert_mail(tenant(locale), [crafted], {}, T0, TOKYO).raw)
    html_part = message.get_body(("html",))
    assert html_part is not None
    for part in (text_of(message), html_part.get_content()):
        assert "hxxps://evil[.]example/fix" in part
        assert "evil.example" not in part and "https://evil" not in part
