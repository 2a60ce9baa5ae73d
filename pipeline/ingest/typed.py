"""The wire formats as typed structs, decoded and checked in one pass in C (msgspec).

`schemas/event.v1.json` and `schemas/heartbeat.v1.json` stay the contract; these structs say the
same thing, only more strictly where an exact match would cost more than it gives: an integer
written as `8080.0`, `v` as `1.0`, an `uptime_s` beyond 2^53, a pattern match that a trailing
newline would satisfy in Python's `$`. Whatever the structs refuse is judged again by the schema
path (`pipeline.ingest.wire`), which names the reason and the detail; so a struct only ever
decides "accepted as far as the schema goes", never a refusal of its own
(tests/unit/test_typed_decoder.py holds them to that over the tests' cases and fuzzed inputs).

Unknown fields are kept (the contract): the closed structs refuse them, and such a record is read
into a dict and converted to the open struct, the fields no struct names going to `extra`; one
whose unknown fields nest objects or arrays goes the schema path whole.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta

from pipeline.ingest.wire import MAX_RECORD_BYTES

# The schemas' patterns with `\Z` for `$` (Python's `$` also matches before a final newline).
TS_PATTERN = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
              r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])\Z")
MAC_PATTERN = r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\Z|^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\Z"

Ts = Annotated[str, Meta(pattern=TS_PATTERN)]
UtmId = Annotated[str, Meta(min_length=1, max_length=128)]
Mac = Annotated[str, Meta(pattern=MAC_PATTERN)] | None
Port = Annotated[int, Meta(ge=0, le=65535)] | None
Zone = Literal["wan", "lan", "ssid1", "ssid2"] | None
Text = str | None


class _RawEvent(msgspec.Struct, frozen=True, gc=False):  # only strings and numbers: no cycle to collect
    v: Literal[1]
    event_id: Annotated[str, Meta(min_length=1, max_length=64)]
    utm_id: UtmId
    ts: Ts
    type: Literal["av", "ips", "url", "app", "web"]
    action: Literal["blocked", "disarmed", "detected", "allowed"]
    direction: Literal["outbound", "inbound", "internal"]
    src_ip: str
    dst_ip: str
    src_mac: Mac = None
    dst_mac: Mac = None
    src_port: Port = None
    dst_port: Port = None
    proto: Text = None
    src_zone: Zone = None
    dst_zone: Zone = None
    signature_id: Text = None
    signature: Text = None
    threat_category: Text = None
    vendor_severity: Annotated[int, Meta(ge=1, le=5)] | None = None
    url: Text = None
    domain: Text = None
    file_name: Text = None
    file_sha256: Text = None
    app_name: Text = None
    web_category: Text = None


class RawEvent(_RawEvent, frozen=True, forbid_unknown_fields=True):
    """A raw event v1 without unknown fields (the common case: decoded straight from the bytes)."""


class OpenRawEvent(_RawEvent, frozen=True):
    """The same, converted from a dict that carries unknown fields too."""


class _RawHeartbeat(msgspec.Struct, frozen=True, gc=False):
    v: Literal[1]
    utm_id: UtmId
    ts: Ts
    firmware: Text = None
    signatures_version: Text = None
    uptime_s: Annotated[int, Meta(ge=0, le=2**53)] | None = None


class RawHeartbeat(_RawHeartbeat, frozen=True, forbid_unknown_fields=True):
    pass


class OpenRawHeartbeat(_RawHeartbeat, frozen=True):
    pass


EVENT_WIRE_FIELDS = frozenset(RawEvent.__struct_fields__)
_EVENT = msgspec.json.Decoder(RawEvent)
_HEARTBEAT = msgspec.json.Decoder(RawHeartbeat)
_UNKNOWN = "Object contains unknown field"


def _decoded(value: bytes, closed: msgspec.json.Decoder, open_type: type) -> tuple[Any, dict[str, Any]] | None:
    if len(value) > MAX_RECORD_BYTES:
        return None
    try:
        return closed.decode(value), {}
    except msgspec.ValidationError as exc:
        if not str(exc).startswith(_UNKNOWN):
            return None
    except Exception:  # noqa: BLE001 - malformed JSON, invalid UTF-8...: the schema path names it
        return None
    try:  # unknown fields: the contract keeps them
        data = orjson.loads(value)
        if any(isinstance(v, (dict, list)) for v in data.values()):
            return None  # nested values: the schema path's own limits (depth) judge them
        return msgspec.convert(data, open_type), data
    except Exception:  # noqa: BLE001 - as above
        return None


def decode_event(value: bytes) -> tuple[RawEvent | OpenRawEvent, dict[str, Any]] | None:
    """The struct and the decoded dict (empty when there was no unknown field), or None: judge it by the schema."""
    return _decoded(value, _EVENT, OpenRawEvent)


def decode_heartbeat(value: bytes) -> tuple[RawHeartbeat | OpenRawHeartbeat, dict[str, Any]] | None:
    return _decoded(value, _HEARTBEAT, OpenRawHeartbeat)
