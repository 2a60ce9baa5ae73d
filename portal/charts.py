"""Charts drawn on the server as inline SVG (no script; presentation attributes only, which a strict
Content-Security-Policy allows). Every number drawn is also written beside the chart, and each shape
carries its value in a `<title>` and a `data-value`, so the tests compare them with the views."""
from __future__ import annotations

from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

from pipeline.models import THREAT_TYPES

COLORS = {"av": "#c0392b", "ips": "#e67e22", "url": "#2e86c1"}
TYPE_LABELS = {"av": "ウイルス対策", "ips": "不正侵入防御", "url": "URLフィルタ"}
STATUS_COLORS = {"online": "#27ae60", "offline": "#c0392b", "never_seen": "#d5d8dc"}
STATUS_LABELS = {"online": "稼働", "offline": "停止", "never_seen": "未接続"}
PEER_COLOR = "#2c3e50"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000):
        if value <= step * 4:
            return float(step * 4) if value > step * 2 else float(step * 2) if value > step else float(step)
    return float(value)


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" aria-label="{escape(label)}" class="chart">' + "".join(body) + "</svg>")


def _legend(x: int, y: int, items: list[tuple[str, str]]) -> list[str]:
    out = []
    for label, color in items:
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14}" y="{y}" font-size="11" fill="#333">{escape(label)}</text>')
        x += 24 + 12 * len(label)
    return out


def daily_chart(days: list[date], own: dict[date, dict[str, int]], peers: dict[date, dict[str, float]] | None,
                label: str = "日別の検知数") -> str:
    """Stacked bars of the tenant's detections per day and type; the peer average (total of the
    types) as a line where the view gives one."""
    width, height, left, right, top, bottom = 760, 260, 44, 10, 14, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(own.get(d, {}).values()) for d in days]
    peer_totals = [sum(peers[d].values()) if peers is not None and d in peers else None for d in days]
    top_value = _nice_max(max([*totals, *(p for p in peer_totals if p is not None), 0]))
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.7)
    y = lambda v: top + plot_h - plot_h * (v / top_value)  # noqa: E731
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#999"/>']
    for i in range(5):
        value = top_value * i / 4
        body.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end" fill="#555">'
                    f'{value:g}</text>')
    every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = left + slot * i + (slot - bar_w) / 2
        base = 0.0
        body.append(f'<g class="day" data-day="{day.isoformat()}" data-total="{totals[i]}"'
                    + (f' data-peer="{peer_totals[i]:.2f}"' if peer_totals[i] is not None else "") + ">")
        for kind in THREAT_TYPES:
            value = own.get(day, {}).get(kind, 0)
            if value:
                body.append(f'<rect x="{x:.1f}" y="{y(base + value):.1f}" width="{bar_w:.1f}" '
                            f'height="{y(base) - y(base + value):.1f}" fill="{COLORS[kind]}" data-value="{value}">'
                            f'<title>{day.month}/{day.day} {TYPE_LABELS[kind]} {value}件</title></rect>')
                base += value
        body.append("</g>")
        if i % every == 0:
            body.append(f'<text x="{left + slot * i + slot / 2:.1f}" y="{top + plot_h + 14}" font-size="10" '
                        f'text-anchor="middle" fill="#555">{day.month}/{day.day}</text>')
    if peers is not None:
        segment: list[str] = []
        for i, value in enumerate([*peer_totals, None]):
            if value is not None:
                segment.append(f"{left + slot * i + slot / 2:.1f},{y(value):.1f}")
                continue
            if len(segment) == 1:
                cx, cy = segment[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{PEER_COLOR}" class="peer"/>')
            elif segment:
                body.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{PEER_COLOR}" '
                            f'stroke-width="1.8" class="peer"/>')
            segment = []
    legend = [(TYPE_LABELS[k], COLORS[k]) for k in THREAT_TYPES]
    if peers is not None:
        legend.append(("他社平均（合計）", PEER_COLOR))
    body += _legend(left, height - 12, legend)
    return _svg(width, height, label, body)


def bars_chart(rows: list[tuple[str, dict[str, int]]], label: str) -> str:
    """One horizontal stacked bar per row (a UTM, a category), by threat type."""
    row_h, left, right, top = 24, 150, 60, 8
    width = 760
    height = top + row_h * max(1, len(rows)) + 30
    top_value = _nice_max(max([sum(v.values()) for _, v in rows] + [0]))
    plot_w = width - left - right
    body: list[str] = []
    for i, (name, values) in enumerate(rows):
        y0 = top + i * row_h
        total = sum(values.values())
        body.append(f'<g class="bar" data-name="{escape(name)}" data-total="{total}">'
                    f'<text x="{left - 6}" y="{y0 + 15}" font-size="11" text-anchor="end" fill="#333">'
                    f'{escape(name[:24])}</text>')
        x = float(left)
        for kind in THREAT_TYPES:
            value = values.get(kind, 0)
            if value:
                w = plot_w * value / top_value
                body.append(f'<rect x="{x:.1f}" y="{y0 + 4}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
                            f'fill="{COLORS[kind]}" data-value="{value}"><title>{escape(name)} {TYPE_LABELS[kind]} '
                            f'{value}件</title></rect>')
                x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y0 + 15}" font-size="11" fill="#333">{total}</text></g>')
    body += _legend(left, height - 8, [(TYPE_LABELS[k], COLORS[k]) for k in THREAT_TYPES])
    return _svg(width, height, label, body)


def simple_bars(rows: list[tuple[str, int]], label: str, color: str = "#2e86c1") -> str:
    """One horizontal bar per row (web categories, applications)."""
    row_h, left, right, top = 22, 200, 70, 6
    width = 760
    height = top + row_h * max(1, len(rows)) + 6
    top_value = _nice_max(max([v for _, v in rows] + [0]))
    body = []
    for i, (name, value) in enumerate(rows):
        y0 = top + i * row_h
        w = (width - left - right) * value / top_value
        body.append(f'<g class="bar" data-name="{escape(name)}" data-total="{value}">'
                    f'<text x="{left - 6}" y="{y0 + 14}" font-size="11" text-anchor="end" fill="#333">'
                    f'{escape(name[:30])}</text><rect x="{left}" y="{y0 + 3}" width="{max(w, 1):.1f}" '
                    f'height="{row_h - 6}" fill="{color}"><title>{escape(name)} {value}</title></rect>'
                    f'<text x="{left + w + 4:.1f}" y="{y0 + 14}" font-size="11" fill="#333">{value}</text></g>')
    return _svg(width, height, label, body)


def availability_strip(utms: list[tuple[str, list[tuple[datetime, datetime, str]]]], start: datetime, end: datetime,
                       tz: ZoneInfo, label: str = "UTMの稼働状況") -> str:
    """One strip per UTM from `start` to `end` (the time counted, not the whole month): each
    segment in its status colour from the UTM's first sign of life (the time before is not counted,
    as the availability beside it), any online or stopped segment at least 2 px wide, so a UTM
    online for the last hour is not drawn as not seen; grey (未接続) only for a UTM never seen."""
    row_h, left, right, top = 22, 150, 10, 8
    width = 760
    height = top + row_h * max(1, len(utms)) + 34
    plot_w = width - left - right
    span = max(1.0, (end - start).total_seconds())
    x = lambda t: left + plot_w * max(0.0, min(1.0, (t - start).total_seconds() / span))  # noqa: E731
    body = []
    for i, (utm_id, segments) in enumerate(utms):
        y0 = top + i * row_h
        body.append(f'<g class="strip" data-utm="{escape(utm_id)}"><text x="{left - 6}" y="{y0 + 14}" font-size="11" '
                    f'text-anchor="end" fill="#333">{escape(utm_id[:24])}</text>'
                    f'<rect x="{left}" y="{y0 + 3}" width="{plot_w}" height="{row_h - 6}" fill="#fff" stroke="#ddd"/>')
        seen = any(status != "never_seen" for _, _, status in segments)
        for seg_start, seg_end, status in segments:
            if seen and status == "never_seen":
                continue  # before its first sign of life: not counted, not drawn
            x0, x1 = x(seg_start), x(seg_end)
            w = x1 - x0 if status == "never_seen" else max(2.0, x1 - x0)
            x0 = min(x0, left + plot_w - w)
            body.append(f'<rect x="{x0:.1f}" y="{y0 + 3}" width="{w:.1f}" height="{row_h - 6}" '
                        f'fill="{STATUS_COLORS.get(status, "#999")}" data-status="{status}"><title>'
                        f'{STATUS_LABELS.get(status, status)} {seg_start.astimezone(tz):%m/%d %H:%M}〜'
                        f'{seg_end.astimezone(tz):%m/%d %H:%M}</title></rect>')
        body.append("</g>")
    base = top + row_h * max(1, len(utms))
    body.append(f'<text x="{left}" y="{base + 12}" font-size="10" fill="#555">{start.astimezone(tz):%m/%d %H:%M}</text>'
                f'<text x="{width - right}" y="{base + 12}" font-size="10" text-anchor="end" fill="#555">'
                f'{end.astimezone(tz):%m/%d %H:%M}</text>')
    body += _legend(left, height - 6, [(STATUS_LABELS[s], STATUS_COLORS[s]) for s in ("online", "offline", "never_seen")])
    return _svg(width, height, label, body)
