from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.models import Event
from pipeline.rules import PolicyError, Signal, load_policy

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
POLICY = load_policy()


def event(type: str = "av", category: str | None = "malware", action: str = "blocked",
          direction: str = "outbound", severity: int | None = None, **more: object) -> Event:
    values: dict[str, object] = dict(
        event_id="e1", utm_id="u1", tenant_id="t1", ts=T0, type=type, action=action,
        direction=direction, src_ip="192.168.1.10", dst_ip="203.0.113.5", received_at=T0,
        threat_category=category, vendor_severity=severity,
    )
    values.update(more)
    return Event(**values)  # type: ignore[arg-type]


# (type, threat_category, action, direction, vendor_severity) -> (level, rule) or None.
# Each policy row appears with the cases on both sides of each of its conditions.
TABLE = [
    # 3: av malware/ransomware/spyware that reached the host
    (("av", "malware", "detected", "outbound", None), (3, "av-infection")),
    (("av", "spyware", "allowed", "inbound", None), (3, "av-infection")),
    (("av", "malware", "blocked", "outbound", None), (1, "av-blocked")),
    (("av", "spyware", "disarmed", "inbound", None), (1, "av-blocked")),
    (("ips", "malware", "detected", "outbound", None), None),
    # 3: c2 outbound/internal, any action and any threat type
    (("ips", "c2", "blocked", "outbound", None), (3, "c2-from-host")),
    (("url", "c2", "disarmed", "internal", None), (3, "c2-from-host")),
    (("av", "c2", "allowed", "outbound", None), (3, "c2-from-host")),
    (("ips", "c2", "detected", "inbound", None), None),
    (("url", "c2", "blocked", "inbound", 5), None),
    # 3: ransomware not blocked, any type (av covered by av-infection; both level 3)
    (("ips", "ransomware", "detected", "inbound", None), (3, "ransomware-not-blocked")),
    (("url", "ransomware", "allowed", "outbound", None), (3, "ransomware-not-blocked")),
    (("av", "ransomware", "detected", "outbound", None), (3, "av-infection")),
    (("ips", "ransomware", "blocked", "inbound", None), None),
    (("url", "ransomware", "disarmed", "outbound", None), None),
    (("av", "ransomware", "blocked", "outbound", None), (1, "av-blocked")),
    # 2: ips exploit/scan from the host
    (("ips", "exploit", "blocked", "outbound", None), (2, "ips-host-attacks")),
    (("ips", "scan", "detected", "internal", None), (2, "ips-host-attacks")),
    (("ips", "scan", "detected", "inbound", None), None),
    (("ips", "scan", "blocked", "inbound", 5), None),
    (("url", "scan", "detected", "outbound", None), None),
    # 2 / 1: ips exploit inbound, by action
    (("ips", "exploit", "detected", "inbound", None), (2, "ips-exploit-inbound-not-blocked")),
    (("ips", "exploit", "allowed", "inbound", None), (2, "ips-exploit-inbound-not-blocked")),
    (("ips", "exploit", "blocked", "inbound", None), (1, "ips-exploit-inbound-blocked")),
    (("ips", "exploit", "disarmed", "inbound", None), (1, "ips-exploit-inbound-blocked")),
    (("av", "exploit", "detected", "inbound", None), None),
    # 2 / 1: url malware, by action
    (("url", "malware", "detected", "outbound", None), (2, "url-malware-not-blocked")),
    (("url", "malware", "allowed", "outbound", None), (2, "url-malware-not-blocked")),
    (("url", "malware", "blocked", "outbound", None), (1, "url-malware-blocked")),
    (("url", "malware", "disarmed", "outbound", None), (1, "url-malware-blocked")),
    # 1: url phishing, whatever its action; phishing of other types gives none
    (("url", "phishing", "blocked", "outbound", None), (1, "url-phishing")),
    (("url", "phishing", "allowed", "inbound", None), (1, "url-phishing")),
    (("av", "phishing", "detected", "outbound", None), None),
    # 1: av pua blocked, any other pua
    (("av", "pua", "blocked", "outbound", None), (1, "av-blocked")),
    (("av", "pua", "detected", "outbound", None), (1, "pua")),
    (("ips", "pua", "allowed", "inbound", None), (1, "pua")),
    (("url", "pua", "blocked", "internal", None), (1, "pua")),
    # 0: unknown category with vendor_severity 4-5
    (("ips", None, "blocked", "inbound", 4), (0, "unknown-severe")),
    (("av", "botnet", "detected", "outbound", 5), (0, "unknown-severe")),
    (("ips", None, "blocked", "inbound", 3), None),
    (("url", "botnet", "detected", "outbound", 3), None),
    (("ips", None, "blocked", "inbound", None), None),
    (("ips", "scan", "blocked", "inbound", 4), None),
]


@pytest.mark.parametrize(("fields", "expected"), TABLE, ids=[",".join(map(str, f)) for f, _ in TABLE])
def test_policy_table(fields: tuple, expected: tuple[int, str] | None) -> None:
    type_, category, action, direction, severity = fields
    signal = POLICY.signal(event(type_, category, action, direction, severity))
    if expected is None:
        assert signal is None
    else:
        assert signal is not None and (signal.level, signal.rule) == expected


@pytest.mark.parametrize("type_", ["app", "web"])
def test_records_never_signal(type_: str) -> None:
    assert POLICY.signal(event(type_, "c2", "allowed", "outbound", 5)) is None


def test_signal_carries_title_and_category() -> None:
    signal = POLICY.signal(event("av", "spyware", "detected"))
    assert isinstance(signal, Signal) and signal.category == "spyware" and signal.title
    unknown = POLICY.signal(event("ips", "botnet", "blocked", severity=4))
    assert unknown is not None and unknown.category == "unknown"


def test_highest_level_wins_whatever_the_rule_order(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[rule]]\nname="low"\nlevel=1\ntitle="l"\ntypes=["av"]\n'
        '[[rule]]\nname="high"\nlevel=3\ntitle="h"\nthreat_categories=["malware"]\n'
    )
    signal = load_policy(path).signal(event("av", "malware"))
    assert signal is not None and signal.rule == "high"


@pytest.mark.parametrize(("body", "message"), [
    ('[[rule]]\nname="x"\nlevel=4\ntitle="t"\n', "rule 'x': bad level 4"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\ncolour="red"\n', "rule 'x': unknown key(s) colour"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\ntypes=["av","dns"]\n', "rule 'x': unknown type dns"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\nactions=["dropped"]\n', "rule 'x': unknown action dropped"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\ndirections=["up"]\n', "rule 'x': unknown direction up"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\nmin_severity=9\n', "rule 'x': bad min_severity 9"),
    ('[[rule]]\nname="x"\nlevel=1\n', "rule 'x': missing or empty 'title'"),
    ('[[rule]]\nlevel=1\ntitle="t"\n', "rule #1: missing or empty 'name'"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\n[[rule]]\nname="x"\nlevel=2\ntitle="t"\n', "rule 'x': name used twice"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\nthreat_categories="malware"\n', "rule 'x': 'threat_categories' must be"),
    ('[[rule]]\nname="x"\nlevel=1\ntitle="t"\n[extra]\n', "unknown section(s) extra"),
    ("[[rule]\n", "not valid TOML"),
    ("", "no [[rule]] entries"),
])
def test_broken_file_names_rule_and_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(body)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")
