"""A request body to records: gzip decoding within the size limit, then a JSON array or NDJSON."""
from __future__ import annotations

import zlib

import orjson


class BodyError(Exception):
    """The body cannot be taken at all: `status` 413 (too large) or 400 (undecodable)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent, or gunzipped; more than `limit` bytes either way is a 413, never decoded whole
    (a small gzip body may inflate to gigabytes)."""
    if len(raw) > limit:
        raise BodyError(413, "too_large", f"the body is {len(raw)} bytes, the limit is {limit}")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: only gzip is accepted")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
        if len(body) > limit or inflater.unconsumed_tail:
            raise BodyError(413, "too_large", f"the decoded body is above the limit of {limit} bytes")
        body += inflater.flush()
    except zlib.error as exc:
        raise BodyError(400, "bad_encoding", f"not a gzip stream: {exc}") from None
    if len(body) > limit:
        raise BodyError(413, "too_large", f"the decoded body is above the limit of {limit} bytes")
    if not inflater.eof:
        raise BodyError(400, "bad_encoding", "the gzip stream is truncated")
    return body


def split_records(body: bytes) -> list[bytes]:
    """The records of a body: the elements of a JSON array (each re-serialized, so its size and
    checks are those of a line), or the non-blank lines of NDJSON. A body that starts like an array
    but is not valid JSON cannot be split: 400."""
    start = body.lstrip()[:1]
    if start == b"[":
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BodyError(400, "invalid_json", f"the body starts with '[' but is not a JSON array: {exc}") from None
        if not isinstance(items, list):
            raise BodyError(400, "invalid_json", "the body is not a JSON array")
        return [orjson.dumps(item) for item in items]
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]
