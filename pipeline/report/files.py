"""One rendered report to files, without sending: the .eml, and its HTML, text and PNGs beside it."""
from __future__ import annotations

from pathlib import Path

from pipeline.report.render import RenderedReport


def write_report(rendered: RenderedReport, directory: Path) -> Path:
    """Write `<tenant>-<month>.eml` and, beside it, `.html` (its pictures linked as files), `.txt` and
    the PNGs; return the .eml's path. The same report overwrites the same files."""
    mail = rendered.mail
    month = mail.raw.split("X-Mimamori-Month: ", 1)[1].split("\n", 1)[0].strip()
    stem = f"{_safe(mail.tenant_id)}-{month}"
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


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"
