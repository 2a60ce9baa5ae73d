"""Rows as the commands print them (`mimamori query`, `notice list`, the demo): an aligned table, JSON
lines, or CSV whose cells a spreadsheet will not run."""
from __future__ import annotations

import csv
from datetime import date, datetime
from typing import Any

import orjson

from pipeline.models import iso


def plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with a formula character gets a leading
    apostrophe (numbers are left as they are; `-3` is a number, not a formula)."""
    text = _cell(value)
    if not isinstance(value, (int, float)) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_rows(rows: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "json":
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
        return
    if not rows:
        if fmt == "table":
            out.write("(no rows)\n")
        return
    names = list(rows[0])
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; a CR or LF inside a cell is then quoted
        writer.writerow([csv_cell(n) for n in names])
        writer.writerows([csv_cell(row[n]) for n in names] for row in rows)
        return
    cells = [[_cell(row[n]) for n in names] for row in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    for line in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n")
