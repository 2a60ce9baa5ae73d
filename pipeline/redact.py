"""The one place that keeps secrets out of what mimamori prints (CONTRACT.md: a URL in a log, an
error or `/health` shows `USER:***@`).

`redact(text)` masks the password of every URL in a text (`scheme://user:PASS@host` ->
`scheme://user:***@host`, `?password=PASS` -> `?password=***`) and every secret the process was
told about (`remember_secrets`: the Kafka password, the passwords of the store and SMTP URLs,
keys), wherever it appears. It is applied where text leaves the process: the log formatters
(pipeline.logs), the command line's stdout and stderr (mimamori.cli) and the errors that name a
URL (store, mail). A secret shorter than MIN_SECRET characters is only masked inside URLs:
masking every occurrence of a 3-letter string would garble the text and tell its length anyway.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
MIN_SECRET = 6

_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\"'<>]*):(?P<secret>[^\s@/\"'<>]*)@")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pass|secret|token|key)=)(?P<secret>[^&#\s\"'<>]+)", re.I)

_secrets: set[str] = set()


def remember_secrets(values: Iterable[str | None]) -> None:
    """Secrets to mask wherever they appear from now on in this process (as given and percent-decoded)."""
    for value in values:
        if not value:
            continue
        for form in {value, unquote(value)}:
            if len(form) >= MIN_SECRET:
                _secrets.add(form)


def url_secrets(url: str) -> list[str]:
    """The password of a URL (userinfo and password-like query parameters)."""
    found = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    found += [m.group("secret") for m in _QUERY.finditer(url)]
    return found


def redact(text: str) -> str:
    """`text` with every URL password and every remembered secret replaced by `***`."""
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """A URL fit to print: `clickhouse://mimamori:***@db:9000/mimamori`."""
    return redact(url)


class RedactingStream:
    """A text stream that writes `redact(text)` to the stream it wraps (the command line's stdout
    and stderr); everything else (buffer, isatty, encoding...) is the wrapped stream's."""

    def __init__(self, stream: object) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        self.wrapped.write(redact(text))  # type: ignore[attr-defined]
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)
