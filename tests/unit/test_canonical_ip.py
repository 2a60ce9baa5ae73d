"""canonical_ip's fast paths (an IPv4 address already in compressed form is its own answer; an IPv6
one of hex groups goes through inet_pton/inet_ntop) give exactly what `ipaddress` gives, for
addresses written any way and for near misses."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.wire import canonical_ip


def reference(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if getattr(address, "scope_id", None) else address.compressed


CASES = ["0.0.0.0", "255.255.255.255", "192.168.1.10", "10.0.0.1", "256.1.1.1", "01.2.3.4", "1.2.3.04",
         "1.2.3", "1.2.3.4.5", "1.2.3.4\n", " 1.2.3.4", "1..2.3", "１.2.3.4", "1.2.3.٤", "::1", "2001:DB8::1",
         "::ffff:1.2.3.4", "::6:2789", "0:0:0:0:0:0:6:2789", "1:0:0:1:0:0:0:1", "1::2::3", "::1 ", "fe80::1%eth0", "", "a.b.c.d", "999.0.0.0", "100.200.250.255"]


def test_known_cases() -> None:
    for text in CASES:
        assert canonical_ip(text) == reference(text), text


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "001", "٣", ""])),
                min_size=1, max_size=6).map(".".join))
def test_dotted_strings_agree_with_ipaddress(text: str) -> None:
    assert canonical_ip(text) == reference(text)


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses().map(str))
def test_addresses_agree_with_ipaddress(text: str) -> None:
    assert canonical_ip(text) == reference(text)


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses(v=6), st.sampled_from(["compressed", "exploded", "upper", "exploded-upper"]))
def test_ipv6_written_any_way_agrees_with_ipaddress(address: ipaddress.IPv6Address, how: str) -> None:
    text = {"compressed": str(address), "exploded": address.exploded, "upper": str(address).upper(),
            "exploded-upper": address.exploded.upper()}[how]
    assert canonical_ip(text) == reference(text)


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.%g ", max_size=24))
def test_near_misses_agree_with_ipaddress(text: str) -> None:
    assert canonical_ip(text) == reference(text)
