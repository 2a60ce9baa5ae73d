"""Records of the worker's own topics that are not contract records themselves (each with its
JSON Schema in schemas/): rows waiting for the store, and each worker's share of the fleet."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

STORE_TABLES = ("events", "alerts", "utm_status", "utm_last_seen", "mails", "tenants", "utms", "notices")


@dataclass(frozen=True, slots=True)
class StoreRows:
    """`mimamori-store-rows` (key: the table): rows for one table of the store. `recheck`: they
    may have been published before, by a batch cut short (their events are checked against the
    store before they are inserted)."""

    table: str
    rows: list[dict[str, Any]]
    recheck: bool = False

    def to_record(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "recheck": self.recheck}

    @staticmethod
    def values(table: str, rows: list[dict[str, Any]], *, recheck: bool = False, max_rows: int,
               max_bytes: int) -> list[bytes]:
        """The messages of a table's rows (what `to_record` gives, as JSON), each of at most
        `max_rows` rows and `max_bytes` bytes plus one row: each row is encoded once and the
        messages are joined around them."""
        from pipeline.rows import row_json  # (rows imports models, which this module must not need at import)

        encoded = [row_json(row) for row in rows]  # datetimes as models.iso writes them; each of its own size
        return StoreRows.text_values(table, encoded, recheck=recheck, max_rows=max_rows, max_bytes=max_bytes)

    @staticmethod
    def text_values(table: str, texts: list[bytes], *, recheck: bool = False, max_rows: int,
                    max_bytes: int) -> list[bytes]:
        """`values` of rows given as their JSON texts (each a JSON object, encoded once by the caller)."""
        from pipeline.bounds import chunks_by_size

        head = b'{"table":' + orjson.dumps(table) + b',"rows":['
        tail = b'],"recheck":' + (b"true" if recheck else b"false") + b"}"
        return [head + b",".join(run) + tail
                for run in chunks_by_size(texts, _text_size, max_bytes - len(head) - len(tail), max_rows)]

    @staticmethod
    def raw(value: bytes) -> "RawStoreRows":
        """A message whose rows stay JSON, one `msgspec.Raw` each (checked well-formed, not decoded):
        the store hands them to the engine as they came. 0.44 us a row against orjson's 1.5 for the
        whole message as Python objects (rows of ~600 bytes)."""
        message = _RAW_STORE_ROWS.decode(value)
        if message.table not in STORE_TABLES:
            raise ValueError(f"not a table of the store: {message.table!r}")
        return message

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "StoreRows":
        table, rows = data["table"], data["rows"]
        if table not in STORE_TABLES:
            raise ValueError(f"not a table of the store: {table!r}")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("rows: expected a list of objects")
        return cls(table, rows, bool(data.get("recheck", False)))


class RawStoreRows(msgspec.Struct, frozen=True):
    """`StoreRows` as read by the store processor: each row its JSON text."""

    table: str
    rows: list[msgspec.Raw]
    recheck: bool = False


def _text_size(text: bytes) -> int:
    return len(text) + 1


def json_array(rows: list[msgspec.Raw]) -> bytes:
    """Rows' JSON texts as one JSON array (what Store.insert_json takes), in one copy of the rows: the
    brackets go on the first and last row (small copies), where `b"[" + b",".join(rows) + b"]"`
    copied a whole store batch twice (~60 MB at once of a worker's peak while draining)."""
    if not rows:
        return b"[]"
    if len(rows) == 1:
        return b"[" + rows[0] + b"]"
    return b",".join([b"[" + rows[0], *rows[1:-1], bytes(rows[-1]) + b"]"])


_RAW_STORE_ROWS = msgspec.json.Decoder(RawStoreRows)


@dataclass(frozen=True, slots=True)
class SilenceReport:
    """`mimamori-fleet` (key: the input partition): how many UTMs of one partition were silent for
    more than half the heartbeat timeout, of how many seen, at a worker's last check, and up to
    when that count holds (`counted_until`, Unix time; None: not counted yet). A report without it
    (written before it existed) is taken as counted up to `reported_at`."""

    silent: int
    seen: int
    reported_at: float
    counted_until: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {"silent": self.silent, "seen": self.seen, "reported_at": self.reported_at,
                "counted_until": self.counted_until}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "SilenceReport":
        silent, seen = int(data["silent"]), int(data["seen"])
        if not 0 <= silent <= seen:
            raise ValueError(f"silent {silent} of {seen} seen")
        reported_at = float(data["reported_at"])
        counted = data.get("counted_until", reported_at)
        return cls(silent, seen, reported_at, None if counted is None else float(counted))
