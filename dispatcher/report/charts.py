"""The report's charts: static SVG drawn with pygal from a ``Timeline``.

pygal (LGPL-3.0-or-later, pure Python) was chosen for its small footprint and native
SVG output; docs/report.md has the comparison. Its output is made offline-safe here:
no tooltip script URL (``js=[]``) and its inline config ``<script>`` removed, so the
report holds no script at all.

A long run is downsampled to at most ``MAX_POINTS`` points a series: counts become the
mean per second over each window (plus the busiest second, so a burst over the
MessagesPerSecond ceiling still shows), and latency percentiles are read from the
window's merged histogram (still within one bucket of exact).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.latency import merge, percentile
from dispatcher.model import FAILURE_STATUSES
from dispatcher.timeline import Timeline

MAX_POINTS = 600
_DECIMALS = re.compile(r"(\.\d)\d+")
WIDTH, HEIGHT = 1000, 260
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
GREEN, RED, GREY, BLUE, ORANGE, PURPLE = (
    "#2e9d5b", "#d64541", "#9aa0a6", "#3b6fd8", "#e08a1e", "#8e44ad")  # fmt: skip
CHANNEL_COLORS = ("#3b6fd8", "#e08a1e", "#8e44ad", "#16a2b8", "#c2185b", "#6d8b00")
NOT_SENT = ("not sent (rules, hook, opt-out...)", GREY)


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the report: its SVG, or None with the reason it is not drawn."""

    key: str
    title: str
    svg: str | None
    empty: str = ""
    caption: str = ""
    legend: tuple[Series, ...] = ()
    """The series drawn, for the page's own legend (pygal's clips long ones)."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: list[tuple[float, float | None]]
    color: str
    width: float = 1.6
    dash: str | None = None


def charts(timeline: Timeline) -> list[Chart]:
    """The four charts: sends, settled records, hook calls, hook latency."""
    span = max(timeline.seconds, 1)
    window = max(1, math.ceil(span / MAX_POINTS))
    caption = (
        "Each step is one second."
        if window == 1
        else f"Each step is the mean per second over {window} seconds."
    )
    return [
        _sends(timeline, span, window, caption),
        _settled(timeline, span, window, caption),
        _hook_calls(timeline, span, window, caption),
        _latency(timeline, span, window),
    ]


def _sends(t: Timeline, span: int, window: int, caption: str) -> Chart:
    title = "Messages sent per second"
    sends = t.sends()
    if not any(any(row) for row in sends.values()):
        return Chart("sends", title, None, "No message was sent.")
    series = [Series(ch, _mean(row, window), CHANNEL_COLORS[i % len(CHANNEL_COLORS)])
              for i, (ch, row) in enumerate(sends.items())]  # fmt: skip
    total = [sum(col) for col in zip(*sends.values(), strict=True)]
    if len(sends) > 1:
        series.append(Series("all channels", _mean(total, window), "#222222", 2.2))
    if window > 1:
        series.append(Series("busiest second", _peak(total, window), "#80868b", 0.8, "2,3"))
    throttles = t.throttles()
    if any(throttles):
        series.append(Series("throttled answers", _mean(throttles, window), RED, 1.2))
    top = max(total)
    if t.ceiling:
        series.append(Series(f"MessagesPerSecond ceiling ({t.ceiling:,g})",
                             [(0, t.ceiling), (span, t.ceiling)], RED, 2.2, "9,5"))  # fmt: skip
        top = max(top, t.ceiling)
    series += _attempt_marks(t, top)
    return Chart(
        "sends", title, _render(series, span, top, _count), caption=caption, legend=tuple(series)
    )


def _settled(t: Timeline, span: int, window: int, caption: str) -> Chart:
    title = "Records settled per second"
    outcomes = t.outcomes()
    if not outcomes:
        return Chart("settled", title, None, "No record was settled.")
    groups: dict[str, list[int]] = {}
    for status, row in outcomes.items():
        name = ("sent" if status == "SUCCESS" else
                "failed" if status in FAILURE_STATUSES else NOT_SENT[0])  # fmt: skip
        groups[name] = [a + b for a, b in zip(groups.get(name, [0] * len(row)), row, strict=True)]
    colors = {"sent": GREEN, "failed": RED, NOT_SENT[0]: GREY}
    series = [Series(name, _mean(groups[name], window), colors[name])
              for name in ("sent", "failed", NOT_SENT[0]) if name in groups]  # fmt: skip
    top = max(max(v or 0 for _, v in s.points) for s in series)
    return Chart(
        "settled", title, _render(series, span, top, _count), caption=caption, legend=tuple(series)
    )


def _hook_calls(t: Timeline, span: int, window: int, caption: str) -> Chart:
    title = "Hook calls per second"
    ok, failed = t.hook_calls()
    if not any(ok) and not any(failed):
        return Chart("hook", title, None, "The hook was not called.")
    series = [Series("answered", _mean(ok, window), BLUE)]
    if any(failed):
        series.append(Series("failed", _mean(failed, window), RED))
    top = max(max(v or 0 for _, v in s.points) for s in series)
    return Chart(
        "hook", title, _render(series, span, top, _count), caption=caption, legend=tuple(series)
    )


def _latency(t: Timeline, span: int, window: int) -> Chart:
    title = "Hook latency (p50, p95, p99)"
    histograms = t.latency_histograms()
    merged = [merge(h for h in histograms[i : i + window] if h is not None)
              for i in range(0, len(histograms), window)]  # fmt: skip
    series = []
    for q, name, color in ((0.5, "p50", GREEN), (0.95, "p95", ORANGE), (0.99, "p99", RED)):
        points = _steps([percentile(h, q) for h in merged], window, span)
        series.append(Series(name, points, color))
    values = [v for s in series for _, v in s.points if v is not None]
    if not values:
        return Chart("latency", title, None, "The hook was not called.")
    caption = "Per second." if window == 1 else f"Over windows of {window} seconds."
    caption += " Read from a histogram with buckets 9 % wide: within 4.4 % of exact."
    log = max(values) / max(min(values), 1e-9) > 50
    if log:
        caption += " Logarithmic scale."
    svg = _render(series, span, max(values), _duration, log=log, low=min(values))
    return Chart("latency", title, svg, caption=caption, legend=tuple(series))


def _attempt_marks(t: Timeline, top: float) -> list[Series]:
    return [Series(f"attempt {i} starts", [(s, 0), (s, top)], GREY, 1.2, "3,3")
            for i, s in enumerate(t.attempts[1:], start=2)]  # fmt: skip


def _mean(row: Sequence[int], window: int) -> list[tuple[float, float | None]]:
    means = [sum(row[i : i + window]) / len(row[i : i + window])
             for i in range(0, len(row), window)]  # fmt: skip
    return _steps(means, window, len(row))


def _peak(row: Sequence[int], window: int) -> list[tuple[float, float | None]]:
    peaks = [float(max(row[i : i + window])) for i in range(0, len(row), window)]
    return _steps(peaks, window, len(row))


def _steps(
    values: Sequence[float | None], window: int, span: int
) -> list[tuple[float, float | None]]:
    """A step line: each window's value held across its seconds. A count is per second,
    not per instant, and so a one-second run still draws a visible line. None (no data,
    e.g. no hook call) breaks the line."""
    points: list[tuple[float, float | None]] = []
    for i, value in enumerate(values):
        start, end = float(i * window), float(min((i + 1) * window, span))
        if value is None:
            points.append((start, None))
        else:
            points += [(start, value), (end, value)]
    return points


def _render(
    series: Sequence[Series],
    span: int,
    top: float,
    formatter: Callable[[float], str],
    *,
    log: bool = False,
    low: float = 0.0,
) -> str:
    import pygal  # type: ignore[import-untyped]  # ~0.3 s: only when drawing
    from pygal.style import Style  # type: ignore[import-untyped]

    style = Style(
        background="#ffffff", plot_background="#ffffff", foreground="#3c4043",
        foreground_strong="#202124", foreground_subtle="#5f6368", font_family=FONT,
        label_font_size=11, major_label_font_size=11, legend_font_size=12, title_font_size=14,
        guide_stroke_color="#e8eaed", major_guide_stroke_color="#dadce0",
        guide_stroke_dasharray="0", major_guide_stroke_dasharray="0",
        opacity="1", opacity_hover="1", stroke_opacity="1", stroke_opacity_hover="1",
        stroke_width_hover="2", colors=tuple(s.color for s in series), transition="0ms",
    )  # fmt: skip
    config: dict[str, Any] = dict(
        style=style, width=WIDTH, height=HEIGHT, js=[],
        disable_xml_declaration=True, explicit_size=False, show_dots=False,
        show_legend=False, show_x_guides=False, allow_interruptions=True,
        x_labels=_ticks(span), x_value_formatter=_elapsed, value_formatter=formatter,
        xrange=(0, span), margin=12, spacing=12, print_values=False, tooltip_fancy_mode=False,
    )  # fmt: skip
    if log:
        config.update(logarithmic=True, range=(low / 1.2, top * 1.2))
    else:
        config.update(range=(0, _nice_top(top)), include_x_axis=True)
    chart = pygal.XY(**config)
    chart.add_xml_filter(_offline)
    for s in series:
        stroke: dict[str, Any] = {"width": s.width, "linejoin": "round"}
        if s.dash:
            stroke["dasharray"] = s.dash
        chart.add(s.name, s.points, stroke_style=stroke)
    return str(chart.render(is_unicode=True))


def _offline(root: Any) -> Any:
    """Remove pygal's inline config ``<script>`` and its comments: the report runs no
    script (pygal's tooltips would need its JavaScript from a CDN)."""
    for parent in list(root.iter()):
        for child in list(parent):
            # pygal's comments name its web site: no URL but the SVG namespace stays.
            if callable(child.tag) or str(child.tag).rpartition("}")[2] == "script":
                parent.remove(child)
        path = parent.get("d")
        if path is not None:  # pygal writes 6 decimals; a tenth of a pixel is plenty
            parent.set("d", _DECIMALS.sub(r"\1", path))
    return root


def _ticks(span: int) -> list[int]:
    """About 6 to 12 round elapsed times from 0 to ``span`` seconds."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if span / step <= 12:
            break
    else:
        step = math.ceil(span / 12 / 3600) * 3600
    return list(range(0, span + 1, step))


def _nice_top(top: float) -> float:
    """A round axis top a little above ``top`` (1, 2, 2.5, 5 x 10^n)."""
    if top <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(top * 1.05))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * base >= top * 1.05:
            return float(m * base)
    return float(10 * base)


def _elapsed(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _count(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "0"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"
