"""Bounds that keep one input from stopping a partition, and every record the worker writes below
its topic's `max.message.bytes` (`pipeline.io.kafka_admin` sets those from the figures here).

- Nesting: orjson reads JSON nested up to 1024 levels but writes at most 254 (it raises
  "Recursion limit reached" beyond). A record the worker can read but not write again would fail
  at the first stage that serializes it (the store row's `extra`), after validation, on every
  retry. The validator refuses anything nested deeper than `MAX_NESTING` (reason `schema`).
- Rejections carry at most `KEPT_ORIGINAL_BYTES` of the original value, with its size and SHA-256:
  an input of any size gives a rejection record of at most ~400 KiB (64 KiB of text, each byte
  escaped as at most 6 in JSON).
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any, Callable, Iterable, Iterator, TypeVar

import orjson

T = TypeVar("T")

MAX_NESTING = 128
"""Deepest nesting of a record's JSON (the record's own object is level 1). A UTM's records nest
two or three levels; 128 is half of what orjson writes again (254), which leaves room for the
envelopes the worker puts around what it takes from a record."""

KEPT_ORIGINAL_BYTES = 64 * 1024
"""The most of an original value a rejection carries (the contract's record limit: a record the
worker would have taken is always carried whole)."""

STORE_ROWS_MESSAGE_BYTES = 4 * 1024 * 1024
"""A store-rows message is cut at this size (its topic takes 8 MiB: room for one more row, an
event row being at most ~4 times its 64 KiB record)."""

SEEN_MESSAGE_BYTES = 512 * 1024
"""A batch's dedup pairs are cut into log messages (binary blocks, pipeline.dedup.encode_pairs) of
at most this size (10,000 pairs of UTMs with the longest ids the schema allows would be ~5 MB)."""

MAX_DETAIL_CHARS = 1000
"""A rejection's detail (which field, what was wrong): error texts may quote the input."""


def nesting_depth(data: Any) -> int:
    """Levels of arrays and objects in a parsed JSON value (a scalar is 0, `{}` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def nesting_problem(data: Any, raw: bytes | None = None, limit: int = MAX_NESTING) -> str | None:
    """Why `data` nests too deep to be written again, or None. `raw` (its JSON text) lets most
    records skip the walk: a text with no more brackets than the limit cannot nest deeper."""
    if raw is not None and raw.count(b"{") + raw.count(b"[") <= limit:
        return None
    depth = nesting_depth(data)
    if depth <= limit:
        return None
    return f"record: nests {depth} levels deep, the limit is {limit}"


def kept_original(value: bytes) -> dict[str, Any]:
    """The fields of a rejection that carry the original: `value` (text, when the kept part is valid
    UTF-8) or `value_base64`, at most `KEPT_ORIGINAL_BYTES` of it (cut at a character boundary),
    and `original_size` and `original_sha256` of the whole original."""
    kept = value[:KEPT_ORIGINAL_BYTES]
    text: str | None
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Cut inside a character at the end only: keep the text before it.
        cut_inside = len(value) > len(kept) and exc.reason == "unexpected end of data"
        text = kept[:exc.start].decode("utf-8") if cut_inside else None
    return {
        "value": text,
        "value_base64": None if text is not None else base64.b64encode(kept).decode("ascii"),
        "original_size": len(value),
        "original_sha256": hashlib.sha256(value).hexdigest(),
    }


def bounded_detail(detail: str) -> str:
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[:MAX_DETAIL_CHARS - 1] + "…"


def json_bytes(value: Any, option: int = 0) -> bytes:
    """`value` as JSON in bytes of its own size. orjson (since 3.12) returns bytes whose buffer is
    at least 4 KiB and never shrunk (a row of ~200 bytes held 4 KiB, one of ~900 held 16 KiB): what
    is held until a batch's transaction ends (rows, state writes) would take ~100-200 MB in a large
    batch. The copy costs ~0.2 us."""
    return bytes(memoryview(orjson.dumps(value, option=option)))


def json_text(value: Any, option: int = 0) -> str:
    """orjson text of input-derived data that never raises: what orjson cannot write (nesting past
    its limit; validation refuses it, this is the last guard) becomes a JSON string saying so."""
    try:
        return orjson.dumps(value, option=option).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        return orjson.dumps(f"<not serializable: {exc}>").decode()


def chunks_by_size(items: list[T], size_of: Callable[[T], int], limit: int, max_items: int) -> Iterator[list[T]]:
    """`items` in order, cut into runs of at most `max_items` whose sizes add up to at most `limit`
    (an item larger than the limit alone goes in a run of its own)."""
    run: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if run and (total + size > limit or len(run) >= max_items):
            yield run
            run, total = [], 0
        run.append(item)
        total += size
    if run:
        yield run
