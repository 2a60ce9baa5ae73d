"""One rendered report to files, without sending: the .eml, and its HTML, text and PNGs beside it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.report.render import RenderedReport


def write_report(rendered: RenderedReport, directory: Path) -> Path:
    """Write `<tenant>-<month>.eml` and, beside it, `.html` (its pictures linked as files), `.txt` and
    the PNGs; return the .eml's path. The same report overwrites the same files. Raises OSError
    (`NotADirectoryError` when `directory` is a file) for the caller to say so."""
    mail = rendered.mail
    stem = f"{_safe(mail.tenant_id)}-{_safe(rendered.month)}"
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    html = rendered.html
    for name, png in rendered.images.items():
        picture = f"{stem}-{name}"
        (directory / picture).write_bytes(png)
        cid = name.removesuffix(".png")
        html = _link(html, cid, picture)
    (directory / f"{stem}.html").write_text(html, encoding="utf-8")
    (directory / f"{stem}.txt").write_text(rendered.text, encoding="utf-8")
    eml = directory / f"{stem}.eml"
    eml.write_text(mail.raw, encoding="utf-8", newline="")
    return eml


def _link(html: str, cid: str, file_name: str) -> str:
    """`src="cid:NAME.TOKEN@mimamori"` -> `src="FILE"`, so the HTML opens in a browser."""
    marker = f'src="cid:{cid}.'
    while marker in html:
        start = html.index(marker) + len('src="')
        end = html.index('"', start)
        html = html[:start] + file_name + html[end:]
    return html


SAFE_CHARS = 60


def _safe(text: str) -> str:
    """A file name part from any id: ASCII letters, digits, `-`, `_` (no dot: nothing hidden, no
    `..`), at most 60 characters (a longer or changed id keeps a digest of the whole, so two ids
    never share files)."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in text)
    if safe != text or len(safe) > SAFE_CHARS:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
        safe = f"{safe[:SAFE_CHARS - 13]}_{digest}"
    return safe
