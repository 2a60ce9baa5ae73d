"""Making text from events safe for mail: no control characters, bounded length, defanged links."""
from __future__ import annotations

import re
import unicodedata

_SCHEME = re.compile(r"(?i)\b(?:(http)(s?)|(ftp))://")
_LONE_DOT = re.compile(r"(?<!\[)\.(?!\])")
_LINKISH = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://\S+|www\.\S+)")
_SPACES = re.compile(r"[ \t]+")
# a host name (labels joined by dots, ending in a label of letters: `evil.example`, `a.b.co.jp`,
# `invoice.pdf.exe`) or an IPv4 address, not already defanged
_HOSTISH = re.compile(r"(?<![\w\[.-])(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:[^\W\d_]{2,}|xn--[\w-]+)(?![\w-])"
                      r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")


def defang(text: str) -> str:
    """`http://example.com/evil.exe` -> `hxxp://example[.]com/evil[.]exe`; applying it twice changes nothing."""
    text = _SCHEME.sub(lambda m: "fxp://" if m.group(3) else f"hxxp{m.group(2).lower()}://", text)
    return _LONE_DOT.sub("[.]", text)


def _is_control(char: str) -> bool:
    category = unicodedata.category(char)
    return category.startswith("C") or category in ("Zl", "Zp")


def one_line(text: str | None, limit: int = 200) -> str:
    """A single line without control or format characters (CR, LF, NUL, bidi overrides), cut at `limit`."""
    if not text:
        return ""
    # str.isprintable is False for every C* and Z* category but the space: most texts need no scan
    cleaned = text if text.isprintable() else "".join(" " if _is_control(c) else c for c in text)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def paragraph(text: str | None, limit: int = 4000) -> str:
    """Free text for a body: line breaks kept (as LF), every other control character removed."""
    if not text:
        return ""
    lines = [one_line(line, limit) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    joined = "\n".join(lines).strip("\n")
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def event_text(text: str | None, limit: int = 200) -> str:
    """Every text that comes from events (URLs, domains, file names, categories, signatures, and
    the titles made of them) as mails, reports and portal pages show it: one line, at most `limit`
    characters, every URL, host name and IPv4 address in it defanged
    (`see https://evil.example/fix` -> `see hxxps://evil[.]example/fix`). Idempotent."""
    return defang_links(one_line(text, limit))


def defang_links(text: str) -> str:
    """Defang what looks like a link, a host name or an IPv4 address inside free text; the rest
    stays readable."""
    text = _LINKISH.sub(lambda m: defang(m.group(0)), text)
    return _HOSTISH.sub(lambda m: _LONE_DOT.sub("[.]", m.group(0)), text)
