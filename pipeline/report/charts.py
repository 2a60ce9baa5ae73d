"""The report's two pictures as PNG bytes: detections per day beside the peer average, and each
UTM's availability over the month. matplotlib's object API (no pyplot: no global state, no GUI)."""
from __future__ import annotations

import io
from datetime import datetime, timedelta

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch

from pipeline.models import THREAT_TYPES
from pipeline.report.fonts import japanese_font
from pipeline.report.summary import MonthlyReport

COLORS = {"av": "#c0392b", "ips": "#e67e22", "url": "#2e86c1"}
STATUS_COLORS = {"online": "#27ae60", "offline": "#c0392b", "never_seen": "#d5d8dc"}
DPI = 100

LABELS = {
    "ja": {
        "types": {"av": "ウイルス対策", "ips": "不正侵入防御", "url": "URLフィルタ"},
        "peer": "他社平均（合計）", "detections_title": "日別の検知数", "detections_axis": "検知数",
        "availability_title": "UTMの稼働状況", "online": "稼働", "offline": "停止", "never_seen": "未接続",
    },
    "en": {
        "types": {"av": "Antivirus", "ips": "Intrusion prevention", "url": "URL filter"},
        "peer": "Peer average (total)", "detections_title": "Detections per day", "detections_axis": "Detections",
        "availability_title": "UTM availability", "online": "Online", "offline": "Stopped", "never_seen": "Not seen yet",
    },
}


def _font() -> FontProperties:
    return FontProperties(fname=str(japanese_font()))


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def detections_chart(report: MonthlyReport, locale: str) -> bytes:
    """Stacked bars of the tenant's detections per day by type; a line of the peer average total."""
    labels, font = LABELS[locale], _font()
    days = list(report.data.days)
    figure = Figure(figsize=(7.2, 3.6))
    axes = figure.add_subplot()
    bottom = [0] * len(days)
    for kind in THREAT_TYPES:
        values = [report.detections_by_day[d][kind] for d in days]
        axes.bar(days, values, bottom=bottom, color=COLORS[kind], width=0.8, label=labels["types"][kind])
        bottom = [b + v for b, v in zip(bottom, values)]
    peers = [sum(report.peer_by_day[d].values()) if d in report.peer_by_day else float("nan") for d in days]
    axes.plot(days, peers, color="#2c3e50", linewidth=1.6, marker="o", markersize=2.5, label=labels["peer"])
    axes.set_title(labels["detections_title"], fontproperties=font)
    axes.set_ylabel(labels["detections_axis"], fontproperties=font)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m/%d"))
    axes.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 10)))
    axes.set_xlim(mdates.date2num(days[0]) - 0.6, mdates.date2num(days[-1]) + 0.6)
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(prop=font, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)
    figure.tight_layout()
    return _png(figure)


def availability_chart(report: MonthlyReport, locale: str) -> bytes:
    """One strip per UTM over the month's days: online, stopped, not seen yet."""
    labels, font = LABELS[locale], _font()
    utms = list(report.utms) or []
    tz = report.data.tz
    figure = Figure(figsize=(7.2, 0.9 + 0.45 * max(1, len(utms))))
    axes = figure.add_subplot()
    # The time counted, not the whole month: a month to date ends now, so a UTM online since this
    # morning is drawn over the hours it was watched (it was a sliver of a 31-day axis, grey beside
    # a text that said 100%); the time before a UTM's first sign of life is left blank, as the text
    # does not count it; and an online or stopped stretch is never thinner than ~2 pixels.
    start, end = report.data.start.astimezone(tz).replace(tzinfo=None), report.data.end.astimezone(tz).replace(tzinfo=None)
    if end <= start:
        end = start + timedelta(days=1)
    least = (mdates.date2num(end) - mdates.date2num(start)) / 300

    def x(value: datetime) -> float:
        return mdates.date2num(value.astimezone(tz).replace(tzinfo=None))

    for row, utm in enumerate(utms):
        seen = any(segment.status != "never_seen" for segment in utm.segments)
        for segment in utm.segments:
            if seen and segment.status == "never_seen":
                continue  # before its first sign of life: not counted (nor drawn), as in the text
            width = x(segment.end) - x(segment.start)
            if segment.status != "never_seen":
                width = max(width, least)
            axes.broken_barh([(min(x(segment.start), mdates.date2num(end) - width), width)], (row - 0.35, 0.7),
                             facecolors=STATUS_COLORS[segment.status])
    axes.set_yticks(range(len(utms)), [u.utm_id for u in utms], fontproperties=font)
    axes.set_ylim(-0.6, max(1, len(utms)) - 0.4)
    axes.invert_yaxis()
    axes.set_xlim(mdates.date2num(start), mdates.date2num(end))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m/%d"))
    axes.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, round((end - start).days / 10))))
    axes.set_title(labels["availability_title"], fontproperties=font, loc="left")
    axes.spines[["top", "right", "left"]].set_visible(False)
    axes.legend(handles=[Patch(color=STATUS_COLORS[s], label=labels[s]) for s in ("online", "offline", "never_seen")],
                prop=font, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3)
    figure.tight_layout()
    return _png(figure)
