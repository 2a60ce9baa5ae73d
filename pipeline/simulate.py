"""A seeded, realistic stream for N tenants x M UTMs, with scripted incidents and their expected outcome.

The same arguments always give the same registry, lines and expectations (one `random.Random(seed)`).
Every line is counted in exactly one bucket of `expected["counts"]`, so a test can check that the
pipeline's outputs add up.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import orjson

from pipeline.ingest import canonical_ip, canonical_mac
from pipeline.models import REJECTION_REASONS, iso

JST = timezone(timedelta(hours=9))
HEARTBEAT_EVERY = timedelta(minutes=1)
SILENCE = timedelta(minutes=20)
HOSTS_PER_UTM = 30
WEB_CATEGORIES = ("news", "search", "shopping", "social", "business", "streaming", "travel", "finance")
APPS = ("LINE", "Zoom", "Microsoft 365", "Dropbox", "YouTube", "Slack", "Google Drive", "Chatwork")
DOMAINS = ("example.com", "example.net", "example.org", "news.example.jp", "shop.example.co.jp")
INDUSTRIES = ("manufacturing", "retail", "construction", "healthcare", "services")
REGIONS = ("kanto", "kansai", "chubu", "kyushu", "tohoku")
MAC_STYLES = ("{}:{}:{}:{}:{}:{}", "{}-{}-{}-{}-{}-{}", "{}{}.{}{}.{}{}")


@dataclass
class Simulation:
    registry: dict[str, Any]
    lines: list[bytes]
    expected: dict[str, Any]


@dataclass(frozen=True)
class Host:
    ip: str
    mac: str

    def expected(self) -> dict[str, str]:
        return {"ip": canonical_ip(self.ip) or self.ip, "mac": canonical_mac(self.mac) or self.mac}


@dataclass
class SimUtm:
    utm_id: str
    tenant_id: str
    hosts: list[Host]
    active: bool = True
    serviced: bool = True
    next_event_no: int = 0

    def next_event_id(self) -> str:
        self.next_event_no += 1
        return f"{self.utm_id}-{self.next_event_no:07d}"


@dataclass
class _Stream:
    """Lines with the time they are sent at; sorted by that time (stable) at the end."""

    rng: random.Random
    entries: list[tuple[datetime, int, bytes]] = field(default_factory=list)
    signs_of_life: dict[str, list[datetime]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=lambda: {
        "events": 0, "heartbeats": 0, "ignored_heartbeats": 0, "duplicates": 0,
        "rejections": {reason: 0 for reason in REJECTION_REASONS},
    })

    def add(self, at: datetime, value: bytes, bucket: str, utm: SimUtm | None = None) -> None:
        self.entries.append((at, len(self.entries), value))
        if utm is not None and bucket in ("events", "heartbeats"):
            self.signs_of_life.setdefault(utm.utm_id, []).append(at)
        if bucket in REJECTION_REASONS:
            self.counts["rejections"][bucket] += 1
        else:
            self.counts[bucket] += 1

    def sorted_lines(self) -> list[bytes]:
        return [value for _, _, value in sorted(self.entries)]


def _wire_time(at: datetime) -> str:
    return at.astimezone(JST).isoformat(timespec="milliseconds")


def _mac(rng: random.Random, style: str) -> str:
    octets = [0x02] + [rng.randrange(256) for _ in range(5)]
    text = style.format(*(f"{o:02x}" for o in octets))
    return text.upper() if "-" in style else text


def _public_ip(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"2001:db8:ffff:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}"
    return f"{rng.choice(('198.51.100', '203.0.113', '192.0.2'))}.{rng.randrange(1, 255)}"


def build_registry(rng: random.Random, tenants: int, utms_per_tenant: int, start: datetime) -> tuple[dict[str, Any], list[SimUtm]]:
    records: dict[str, list[dict[str, Any]]] = {"tenants": [], "utms": []}
    utms: list[SimUtm] = []
    service_start = (start - timedelta(days=200)).date()
    specs = [(f"t-{i:03d}", True) for i in range(1, tenants + 1)] + [("t-inactive", False)]
    for number, (tenant_id, active) in enumerate(specs):
        emails = [f"{who}@{tenant_id}.example.jp" for who in ("security", "it", "ceo")[: 1 + number % 3]]
        records["tenants"].append({
            "tenant_id": tenant_id, "name": f"Customer {tenant_id} 株式会社", "notify_emails": emails,
            "locale": "en" if number % 4 == 3 else "ja", "service_start": service_start.isoformat(),
            "contract_end": None, "industry": INDUSTRIES[number % len(INDUSTRIES)],
            "region": REGIONS[number % len(REGIONS)], "size_band": ("1-9", "10-49", "50-99")[number % 3],
            "active": active,
        })
        count = utms_per_tenant if active else 1
        for index in range(1, count + 1):
            utms.append(_new_utm(rng, f"utm-{tenant_id[2:]}-{index:02d}", tenant_id, len(utms), active))
        if number == 0:
            utms.append(_new_utm(rng, f"utm-{tenant_id[2:]}-99", tenant_id, len(utms), True, utm_active=False))
    for utm in utms:
        records["utms"].append({
            "utm_id": utm.utm_id, "tenant_id": utm.tenant_id, "model": "ZA-SA3500G",
            "registered_at": iso(datetime.combine(service_start, datetime.min.time(), timezone.utc)), "active": utm.active,
        })
    return records, utms


def _new_utm(rng: random.Random, utm_id: str, tenant_id: str, number: int, serviced: bool,
             utm_active: bool = True) -> SimUtm:
    style = MAC_STYLES[number % len(MAC_STYLES)]
    hosts = [
        Host(ip=f"192.168.{number % 250}.{10 + i}" if i % 5 else f"2001:db8:{number + 1:x}:1::{10 + i:x}", mac=_mac(rng, style))
        for i in range(HOSTS_PER_UTM)
    ]
    return SimUtm(utm_id, tenant_id, hosts, active=utm_active, serviced=serviced)


def _event(utm: SimUtm, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "event_id": utm.next_event_id(), "utm_id": utm.utm_id, "ts": _wire_time(at), **fields}


def _outbound(host: Host, dst: str, **fields: Any) -> dict[str, Any]:
    return {"direction": "outbound", "src_ip": host.ip, "src_mac": host.mac, "dst_ip": dst, "src_zone": "lan",
            "dst_zone": "wan", **fields}


def _inbound(host: Host, src: str, **fields: Any) -> dict[str, Any]:
    return {"direction": "inbound", "src_ip": src, "dst_ip": host.ip, "dst_mac": host.mac, "src_zone": "wan",
            "dst_zone": "lan", **fields}


def background_event(rng: random.Random, utm: SimUtm, at: datetime) -> dict[str, Any]:
    """Records and inbound noise, none of which may raise an alert under the default policy."""
    host, roll, domain = rng.choice(utm.hosts), rng.random(), rng.choice(DOMAINS)
    common = {"proto": "tcp", "src_port": rng.randrange(1024, 65536)}
    if roll < 0.55:
        return _event(utm, at, type="web", action="allowed", **_outbound(
            host, _public_ip(rng), dst_port=443, web_category=rng.choice(WEB_CATEGORIES), domain=domain,
            url=f"https://{domain}/{rng.randrange(10**6)}", **common))
    if roll < 0.85:
        return _event(utm, at, type="app", action="allowed", **_outbound(
            host, _public_ip(rng), dst_port=443, app_name=rng.choice(APPS), domain=domain, **common))
    if roll < 0.97:
        return _event(utm, at, type="ips", action="blocked", **_inbound(
            host, _public_ip(rng), dst_port=rng.choice((22, 23, 445, 3389, 8080)), threat_category="scan",
            signature_id=f"IPS-SCAN-{rng.randrange(100, 130)}", signature="Port scan", vendor_severity=2, **common))
    return _event(utm, at, type="ips", action="detected", **_outbound(
        host, _public_ip(rng), dst_port=53, threat_category="policy", signature_id="IPS-POL-7",
        signature="Unusual DNS query", vendor_severity=2, proto="udp"))


Script = Callable[[SimUtm, Host, datetime, random.Random], list[tuple[datetime, dict[str, Any]]]]


def _infection_chain(utm: SimUtm, host: Host, at: datetime, rng: random.Random) -> list[tuple[datetime, dict[str, Any]]]:
    c2 = at + timedelta(minutes=3)
    return [
        (at, _event(utm, at, type="av", action="detected", threat_category="malware", signature_id="AV-TROJ-4411",
                    signature="Trojan.GenericKD", vendor_severity=5, file_name="invoice_2026.pdf.exe",
                    file_sha256=f"{rng.getrandbits(256):064x}", **_inbound(host, _public_ip(rng), proto="tcp"))),
        (c2, _event(utm, c2, type="ips", action="blocked", threat_category="c2", signature_id="IPS-C2-0907",
                    signature="Emotet C2 beacon", vendor_severity=5, **_outbound(host, _public_ip(rng), dst_port=8443))),
    ]


def _download_then_scan(utm: SimUtm, host: Host, at: datetime, rng: random.Random) -> list[tuple[datetime, dict[str, Any]]]:
    out = [(at, _event(utm, at, type="av", action="blocked", threat_category="malware", signature_id="AV-DL-2002",
                       signature="Downloader.Agent", vendor_severity=4, file_name="setup.zip",
                       url="http://dl.example.net/setup.zip", domain="dl.example.net",
                       **_inbound(host, _public_ip(rng), proto="tcp")))]
    for step in range(3):
        when = at + timedelta(minutes=4, seconds=20 * step)
        out.append((when, _event(utm, when, type="ips", action="blocked", threat_category="scan",
                                 signature_id="IPS-SCAN-OUT-31", signature="SMB scan", vendor_severity=3,
                                 **_outbound(host, f"192.168.200.{20 + step}", dst_port=445))))
    return out


def _phishing(utm: SimUtm, host: Host, at: datetime, rng: random.Random) -> list[tuple[datetime, dict[str, Any]]]:
    return [(at, _event(utm, at, type="url", action="blocked", threat_category="phishing", signature_id="URL-PH-88",
                        url="https://login-example.com.example/verify", domain="login-example.com.example",
                        vendor_severity=3, **_outbound(host, _public_ip(rng), dst_port=443)))]


def _unknown_severe(utm: SimUtm, host: Host, at: datetime, rng: random.Random) -> list[tuple[datetime, dict[str, Any]]]:
    return [(at, _event(utm, at, type="ips", action="detected", threat_category="cryptojacking",
                        signature_id="IPS-NEW-5150", signature="Unclassified miner traffic", vendor_severity=5,
                        **_outbound(host, _public_ip(rng), dst_port=3333)))]


def _blocked_exploit(utm: SimUtm, host: Host, at: datetime, rng: random.Random) -> list[tuple[datetime, dict[str, Any]]]:
    return [(at, _event(utm, at, type="ips", action="blocked", threat_category="exploit", signature_id="IPS-EXP-2024",
                        signature="Apache path traversal", vendor_severity=4,
                        **_inbound(host, _public_ip(rng), dst_port=443)))]


# kind -> (script, grade, status); an inbound blocked exploit is grade 1 under the contract's policy.
SCRIPTS: dict[str, tuple[Script, int, str]] = {
    "infection_chain": (_infection_chain, 3, "open"),
    "blocked_download_then_scan": (_download_then_scan, 2, "open"),
    "blocked_phishing": (_phishing, 1, "open"),
    "unknown_high_severity": (_unknown_severe, 0, "investigating"),
    "blocked_inbound_exploit": (_blocked_exploit, 1, "open"),
}


def simulate(*, tenants: int = 3, utms_per_tenant: int = 2, rate: float = 5.0,
             duration: timedelta = timedelta(minutes=30), start: datetime = datetime(2026, 11, 20, tzinfo=JST),
             seed: int = 1) -> Simulation:
    if tenants < 1 or utms_per_tenant < 1 or rate < 0 or duration < timedelta(minutes=10) or start.tzinfo is None:
        raise ValueError("need tenants >= 1, utms-per-tenant >= 1, rate >= 0, duration >= 10m and a start with offset")
    rng = random.Random(seed)
    registry, utms = build_registry(rng, tenants, utms_per_tenant, start)
    end = start + duration
    live = [u for u in utms if u.active and u.serviced]
    silent = _silence(live, start, end)
    stream = _Stream(rng)
    accepted: list[tuple[datetime, bytes, SimUtm]] = []
    incidents = _scripted(stream, rng, live, silent, start, end, accepted)
    _background(stream, rng, live, silent, start, end, rate, accepted)
    _heartbeats(stream, rng, utms, silent, start, end)
    outage = _outage(stream, silent)
    _duplicates(stream, rng, [a for a in accepted if not (silent and a[2] is silent[0])], end)
    _malformed(stream, rng, utms, start, end)
    lines = stream.sorted_lines()
    counts = {"lines": len(lines), **stream.counts}
    expected = {
        "seed": seed, "start": iso(start), "end": iso(end), "tenants": tenants, "utms_per_tenant": utms_per_tenant,
        "rate": rate, "incidents": incidents + ([outage] if outage else []), "counts": counts,
    }
    return Simulation(registry=registry, lines=lines, expected=expected)


def _silence(live: list[SimUtm], start: datetime, end: datetime) -> tuple[SimUtm, datetime, datetime] | None:
    """The last live UTM falls silent for 20 minutes, centred in the run, when the run is long enough."""
    if len(live) < 2 or end - start < SILENCE + timedelta(minutes=4):
        return None
    begins = start + (end - start - SILENCE) / 2
    return live[-1], begins, begins + SILENCE


def _quiet(utm: SimUtm, at: datetime, silent: tuple[SimUtm, datetime, datetime] | None) -> bool:
    return silent is not None and utm is silent[0] and silent[1] <= at < silent[2]


def _scripted(stream: _Stream, rng: random.Random, live: list[SimUtm], silent: Any, start: datetime, end: datetime,
              accepted: list[tuple[datetime, bytes, SimUtm]]) -> list[dict[str, Any]]:
    candidates = [u for u in live if not (silent and u is silent[0])] or live
    span = (end - start) - timedelta(minutes=7)
    incidents = []
    for number, (kind, (script, grade, status)) in enumerate(SCRIPTS.items()):
        utm = candidates[number % len(candidates)]
        host = utm.hosts[number]
        at = start + timedelta(minutes=1) + span * (number / len(SCRIPTS))
        at -= timedelta(microseconds=at.microsecond)
        events = script(utm, host, at, rng)
        for when, record in events:
            value = orjson.dumps(record)
            stream.add(when, value, "events", utm)
            accepted.append((when, value, utm))
        incidents.append({
            "kind": kind, "tenant_id": utm.tenant_id, "utm_id": utm.utm_id, "host": host.expected(), "grade": grade,
            "status": status, "first_seen": iso(events[0][0]), "event_ids": [r["event_id"] for _, r in events],
        })
    return incidents


def _background(stream: _Stream, rng: random.Random, live: list[SimUtm], silent: Any, start: datetime,
                end: datetime, rate: float, accepted: list[tuple[datetime, bytes, SimUtm]]) -> None:
    at = start
    while rate > 0:
        at += timedelta(seconds=rng.expovariate(rate))
        at -= timedelta(microseconds=at.microsecond % 1000)
        if at >= end:
            return
        utm = rng.choice(live)
        if _quiet(utm, at, silent):
            continue
        value = orjson.dumps(background_event(rng, utm, at))
        stream.add(at, value, "events", utm)
        accepted.append((at, value, utm))


def _heartbeats(stream: _Stream, rng: random.Random, utms: list[SimUtm], silent: Any, start: datetime,
                end: datetime) -> None:
    for utm in utms:
        phase = timedelta(seconds=rng.randrange(60))
        at, uptime = start + phase, rng.randrange(3600, 10**6)
        while at < end:
            if not _quiet(utm, at, silent):
                beat = {"v": 1, "utm_id": utm.utm_id, "ts": _wire_time(at), "firmware": "7.2.1",
                        "signatures_version": "2026.11.20.01", "uptime_s": uptime + int((at - start).total_seconds())}
                stream.add(at, orjson.dumps(beat), "heartbeats" if utm.active and utm.serviced else "ignored_heartbeats",
                           utm)
            at += HEARTBEAT_EVERY


def _outage(stream: _Stream, silent: Any) -> dict[str, Any] | None:
    if not silent:
        return None
    utm = silent[0]
    signs = stream.signs_of_life.get(utm.utm_id, [])
    last_before = max((t for t in signs if t < silent[1]), default=None)
    returns_at = min((t for t in signs if t >= silent[2]), default=None)
    return {"kind": "utm_outage", "tenant_id": utm.tenant_id, "utm_id": utm.utm_id, "silent_from": iso(silent[1]),
            "last_seen_before": iso(last_before), "returns_at": iso(returns_at),
            "expected": ["utm-down", "utm-recovered"]}


def _duplicates(stream: _Stream, rng: random.Random, accepted: list[tuple[datetime, bytes, SimUtm]], end: datetime) -> None:
    """Resends of accepted events (the first scripted one among them), a little later, byte for byte.

    None comes from the UTM that falls silent, so that its silence stays silent whatever dedup counts as life.
    """
    picks = [accepted[0]] + rng.sample(accepted[1:], min(len(accepted) - 1, max(3, len(accepted) // 200)))
    for sent, value, _ in picks:
        stream.add(min(sent + timedelta(seconds=rng.randrange(5, 90)), end - timedelta(milliseconds=1)), value, "duplicates")


def _malformed(stream: _Stream, rng: random.Random, utms: list[SimUtm], start: datetime, end: datetime) -> None:
    live = next(u for u in utms if u.active and u.serviced)
    off_utm = next(u for u in utms if not u.active)
    off_tenant = next(u for u in utms if not u.serviced)

    def when() -> datetime:
        return start + timedelta(seconds=rng.uniform(60, (end - start).total_seconds() - 60))

    def event(utm_id: str, at: datetime, **changes: Any) -> dict[str, Any]:
        record = background_event(rng, live, at)
        record.update(utm_id=utm_id, event_id=f"bad-{rng.getrandbits(48):012x}", **changes)
        return record

    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at, blob="A" * (65 * 1024))), "too_large")
    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at))[:-7], "invalid_json")
    at = when()
    stream.add(at, b'{"v":1,"utm_id":"' + live.utm_id.encode() + b'","type":"av","note":"\xff\xfe"}', "invalid_json")
    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at, action="quarantined")), "schema")
    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at, ts=at.replace(tzinfo=None).isoformat())), "schema")
    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at, ts=_wire_time(start - timedelta(days=120)))), "bad_timestamp")
    at = when()
    stream.add(at, orjson.dumps(event(live.utm_id, at, ts="2099-01-01T00:00:00.000+09:00")), "bad_timestamp")
    for utm_id, reason in (("utm-unknown-01", "unregistered_utm"), (off_tenant.utm_id, "inactive_tenant"),
                           (off_utm.utm_id, "inactive_utm")):
        at = when()
        stream.add(at, orjson.dumps(event(utm_id, at)), reason)


