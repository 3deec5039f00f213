"""``render_report``: one self-contained HTML page (inline CSS and SVG, no script, no
external reference) that opens offline. Every string that comes from data (reasons,
ids, names) is HTML-escaped: a failure reason may well contain ``<script>``."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from dispatcher.latency import percentile
from dispatcher.report.charts import Chart, charts
from dispatcher.report.data import FAILURES, ReportData
from dispatcher.report.stats import Reason
from dispatcher.report.style import CSS

REPORT_FILE = "report.html"
TOP_REASONS = 10

STATUS_TEXT = {
    "SUCCESS": "accepted by the provider",
    "FILTERED": "left out by the hook or a filter",
    "OPT_OUT": "opted out",
    "INACTIVE": "endpoint inactive",
    "UNSUPPORTED_CHANNEL": "the campaign has no message for the channel",
    "INVALID": "invalid record, address or endpoint id",
    "DUPLICATE_ADDRESS": "address already sent to in this run",
    "HOOK_FAILURE": "the hook failed",
    "TEMPORARY_FAILURE": "provider error, or send in doubt",
    "PERMANENT_FAILURE": "refused by the provider",
    "THROTTLED": "throttled by the provider, retries used up",
    "HOLDOUT": "in the campaign's holdout",
    "QUIET_TIME": "within the endpoint's quiet time",
    "DAILY_CAP": "daily cap reached",
    "TOTAL_CAP": "total cap reached",
    "EXPIRED": "not sent within MaximumDuration or before EndTime",
    "NO_TIMEZONE": "local-time campaign, endpoint without a valid time zone",
}


def e(value: object) -> str:
    """HTML-escape anything for text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def render_report(data: ReportData) -> str:
    """The report page of one run."""
    title = data.config.campaign_name or data.config.campaign_id or "campaign"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Run report: {e(title)} ({e(data.run_id)})</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(data, title),
        _kpis(data),
        _outcomes(data),
        _treatments(data),
        _timeline(data),
        _reasons(data),
        _config(data),
        _notes(data),
        f"<footer>Generated {e(data.generated_at)} by segment-dispatcher {e(_version())}.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(out_dir: Path, data: ReportData) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path."""
    from dispatcher.errors import StorageError

    path = out_dir / REPORT_FILE
    tmp = path.with_name(REPORT_FILE + ".tmp")
    try:
        tmp.write_text(render_report(data), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from None
    return path


# -- sections ---------------------------------------------------------------------------
def _header(data: ReportData, title: str) -> str:
    badges = []
    if data.dry_run:
        badges.append('<span class="badge warn">dry run: nothing was sent</span>')
    state = data.state or "not finished"
    kind = "ok" if state == "FINISHED" else "warn"
    badges.append(f'<span class="badge {kind}">{e(state.lower())}</span>')
    if data.failures:
        badges.append(f'<span class="badge bad">{data.failures:,} failed</span>')
    who = [f"run <code>{e(data.run_id)}</code>"]
    if data.config.campaign_id and data.config.campaign_id != title:
        who.append(f"campaign <code>{e(data.config.campaign_id)}</code>")
    if data.config.application_id:
        who.append(f"application <code>{e(data.config.application_id)}</code>")
    when = _span_text(data)
    return (f'<header><p class="eyebrow">segment-dispatcher run report</p>'
            f"<h1>{e(title)} {''.join(badges)}</h1>"
            f'<p class="sub">{" · ".join(who)}</p>'
            f'{f"<p class=sub>{e(when)}</p>" if when else ""}</header>')  # fmt: skip


def _kpis(data: ReportData) -> str:
    total = data.total
    sent = data.by_status.get("SUCCESS", 0)
    skipped = total - sent - data.failures
    cards = [
        ("Records", f"{total:,}", "settled"),
        ("Sent", f"{sent:,}", _pct(sent, total)),
        ("Failed", f"{data.failures:,}", _pct(data.failures, total)),
        ("Not sent", f"{skipped:,}", _pct(skipped, total) + " by rule, hook or opt-out"),
    ]
    duration = data.duration
    if duration is not None:
        rate = f"{total / duration:,.0f} records/s" if duration > 0 else ""
        cards.append(("Duration", _duration_text(duration), rate))
    if data.timeline is not None:
        overall = data.timeline.latency_overall()
        p95 = percentile(overall, 0.95)
        if p95 is not None:
            calls = data.timeline.totals()["hook_calls"]
            cards.append(("Hook p95", _latency_text(p95), f"over {calls:,} calls"))
    classes = {"Sent": "ok", "Failed": "bad" if data.failures else "", "Not sent": "muted"}
    items = "".join(f'<div class="kpi {classes.get(label, "")}"><div class="label">{label}</div>'
                    f'<div class="value">{value}</div><div class="note">{e(note)}</div></div>'
                    for label, value, note in cards)  # fmt: skip
    return f'<section class="kpis">{items}</section>'


def _outcomes(data: ReportData) -> str:
    total = data.total
    if not total:
        return '<section><h2>Outcomes</h2><p class="empty">No record was settled.</p></section>'
    rows = []
    for status, n in sorted(data.by_status.items(), key=lambda kv: (-kv[1], kv[0])):
        share = n / total * 100
        rows.append(
            f'<tr><td><span class="dot {_group(status)}"></span><code>{e(status)}</code></td>'
            f'<td class="muted">{e(STATUS_TEXT.get(status, ""))}</td>'
            f'<td class="num">{n:,}</td><td class="num">{_pct(n, total)}</td>'
            f'<td class="barcell"><div class="bar {_group(status)}" '
            f'style="width:{share:.2f}%"></div></td></tr>'
        )
    return ("<section><h2>Outcomes</h2><table class=outcomes><thead><tr><th>Status</th>"
            "<th>Meaning</th><th class=num>Records</th><th class=num>Share</th><th></th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody>"
            f'<tfoot><tr><td colspan=2>Total</td><td class="num">{total:,}</td>'
            "<td class=num>100 %</td><td></td></tr></tfoot></table></section>")  # fmt: skip


def _treatments(data: ReportData) -> str:
    ids = [t for t in data.treatments if t]
    if len(ids) < 2 and not data.config.holdout_percent:
        return ""  # one treatment: the outcomes table says it all
    statuses = sorted({s for counts in data.treatments.values() for s in counts},
                      key=lambda s: (s != "SUCCESS", _group(s) != "failed", s))  # fmt: skip
    head = "".join(f"<th class=num><code>{e(s)}</code></th>" for s in statuses)
    rows = []
    for tid in sorted(data.treatments, key=lambda t: (t == "", t)):
        counts = data.treatments[tid]
        total = sum(counts.values())
        name = data.config.treatments.get(tid, "") if tid else "none (not assigned)"
        cells = "".join(
            f'<td class="num">{counts.get(s, 0):,}'
            f'<span class="pct">{_pct(counts.get(s, 0), total)}</span></td>'
            for s in statuses
        )
        rows.append(f"<tr><td><code>{e(tid or '-')}</code> {e(name)}</td>"
                    f'<td class="num">{total:,}</td>{cells}</tr>')  # fmt: skip
    return ("<section><h2>By treatment</h2><div class=scroll><table class=treatments><thead>"
            f"<tr><th>TreatmentId</th><th class=num>Records</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")  # fmt: skip


def _timeline(data: ReportData) -> str:
    if data.timeline is None:
        return ('<section><h2>Over time</h2><p class="empty">No timeline was recorded for '
                "this run, so there are no charts.</p></section>")  # fmt: skip
    figures = "".join(_figure(c) for c in charts(data.timeline))
    return f"<section><h2>Over time</h2>{figures}</section>"


def _figure(chart: Chart) -> str:
    if chart.svg is None:
        return (
            f'<figure class="chart empty" data-chart="{e(chart.key)}"><h3>{e(chart.title)}'
            f'</h3><p class="empty">{e(chart.empty)}</p></figure>'
        )
    keys = "".join(
        f'<span class="key"><svg width="24" height="10" aria-hidden="true"><line x1="0" y1="5" '
        f'x2="24" y2="5" stroke="{e(s.color)}" stroke-width="{max(s.width, 1.5):g}"'
        f"{f' stroke-dasharray={chr(34)}{e(s.dash)}{chr(34)}' if s.dash else ''}/></svg>"
        f"{e(s.name)}</span>"
        for s in chart.legend
    )
    return (
        f'<figure class="chart" data-chart="{e(chart.key)}"><h3>{e(chart.title)}</h3>'
        f'{chart.svg}<div class="legend">{keys}</div>'
        f"<figcaption>{e(chart.caption)}</figcaption></figure>"
    )


def _reasons(data: ReportData) -> str:
    failed = [r for r in data.reasons if r.status in FAILURES]
    other = [r for r in data.reasons if r.status not in FAILURES]
    parts = ["<section><h2>Why records were not sent</h2>"]
    if not data.reasons_complete:
        parts.append('<p class="note">Too many distinct reasons to count each: the rarest are '
                     "counted together.</p>")  # fmt: skip
    parts.append("<h3>Failures</h3>")
    parts.append(_reason_table(failed, data.failures, "No record failed.", "failed"))
    parts.append("<h3>Left out by rule, hook or opt-out</h3>")
    left_out = data.total - data.by_status.get("SUCCESS", 0) - data.failures
    parts.append(_reason_table(other, left_out, "Every record was sent or failed.", "skipped"))
    parts.append("</section>")
    return "".join(parts)


def _reason_table(rows: Sequence[Reason], total: int, empty: str, kind: str) -> str:
    if not rows:
        return f'<p class="empty">{e(empty)}</p>'
    body = []
    for r in rows[:TOP_REASONS]:
        samples = " ".join(f"<code>{e(s)}</code>" for s in r.samples)
        body.append(f'<tr><td><code>{e(r.status)}</code></td><td class="reason">'
                    f"{e(r.reason) or '<span class=muted>(no reason given)</span>'}</td>"
                    f'<td class="num">{r.count:,}</td><td class="num">{_pct(r.count, total)}'
                    f'</td><td class="samples">{samples}</td></tr>')  # fmt: skip
    more = ""
    if len(rows) > TOP_REASONS:
        rest = sum(r.count for r in rows[TOP_REASONS:])
        more = (f'<tr class="more"><td colspan=2>{len(rows) - TOP_REASONS:,} other reasons</td>'
                f'<td class="num">{rest:,}</td><td class="num">{_pct(rest, total)}</td>'
                "<td></td></tr>")  # fmt: skip
    return (f'<table class="reasons {kind}"><thead><tr><th>Status</th><th>Reason</th>'
            "<th class=num>Records</th><th class=num>Share</th><th>Sample endpoint ids</th>"
            f"</tr></thead><tbody>{''.join(body)}{more}</tbody></table>")  # fmt: skip


def _config(data: ReportData) -> str:
    c = data.config
    config: list[tuple[str, str]] = [
        ("Campaign", " ".join(x for x in (c.campaign_name or "", f"({c.campaign_id})") if x)),
        ("Application", c.application_id),
        ("Segment", c.segment),
        ("Config file", c.config_file),
        ("Channels", ", ".join(f"{ch} via {sender}" for ch, sender in c.channels.items())),
        ("Hook", c.hook or ("none" if c.channels else "")),
        ("Limits", ", ".join(f"{k} {v:,}" for k, v in c.limits.items()) or
         ("none" if c.channels else "")),
        ("Dispatch", ", ".join(f"{k} {v}" for k, v in c.dispatch.items())),
    ]  # fmt: skip
    if c.holdout_percent:
        config.append(("Holdout", f"{c.holdout_percent} %"))
    timings = _timings(data)
    return ('<section class="two"><div><h2>Configuration</h2>'
            f"{_dl(config)}</div><div><h2>Timings</h2>{_dl(timings)}</div></section>")  # fmt: skip


def _timings(data: ReportData) -> list[tuple[str, str]]:
    rows = [("Started", data.started_at or ""), ("Finished", data.finished_at or "")]
    duration = data.duration
    if duration is not None:
        rows.append(("Duration", _duration_text(duration)))
        if duration > 0:
            rows.append(("Endpoints per second", f"{data.total / duration:,.0f}"))
    if data.attempt:
        rows.append(("Attempt", str(data.attempt)))
    if data.hook_invocations is not None:
        rows.append(("Hook invocations", f"{data.hook_invocations:,} (retries included)"))
    if data.scanned is not None and data.scanned > data.total:
        # A segment definition: the export held more records than the segment.
        rows.append(("Records scanned", f"{data.scanned:,} ({data.total:,} in the segment)"))
    t = data.timeline
    if t is not None:
        totals = t.totals()
        sends = [sum(col) for col in zip(*t.sends().values(), strict=True)]
        if sends:
            busy = sum(1 for n in sends if n)
            rows.append(("Messages sent", f"{totals['sent']:,}"))
            rows.append(("Sends per second", f"mean {totals['sent'] / max(busy, 1):,.0f} over "
                         f"{busy:,} busy seconds, busiest {max(sends):,}"))  # fmt: skip
        if totals["throttled"]:
            rows.append(("Throttled answers", f"{totals['throttled']:,}"))
        overall = t.latency_overall()
        qs = [percentile(overall, q) for q in (0.5, 0.95, 0.99)]
        if qs[0] is not None:
            rows.append(("Hook calls", f"{totals['hook_calls']:,} ({totals['hook_failed']:,} "
                         "failed)"))  # fmt: skip
            rows.append(("Hook latency", " · ".join(
                f"{name} {_latency_text(v)}" for name, v in zip(("p50", "p95", "p99"), qs,
                                                                   strict=True) if v)))  # fmt: skip
        if len(t.attempts) > 1:
            rows.append(("Attempts", f"{len(t.attempts)} (charts mark where each began)"))
    return rows


def _notes(data: ReportData) -> str:
    if not data.notes:
        return ""
    items = "".join(f"<li>{e(n)}</li>" for n in data.notes)
    return f'<section class="notes"><h2>About this report</h2><ul>{items}</ul></section>'


# -- formatting -------------------------------------------------------------------------
def _dl(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows if v)
    return f"<dl>{items}</dl>"


def _group(status: str) -> str:
    return "sent" if status == "SUCCESS" else "failed" if status in FAILURES else "skipped"


def _pct(n: int, total: int) -> str:
    if not total:
        return "-"
    share = n / total * 100
    if 0 < share < 0.01:
        return "<0.01 %"
    return f"{share:.2f} %" if share < 10 else f"{share:.1f} %"


def _span_text(data: ReportData) -> str:
    if data.started_at and data.finished_at:
        return f"{data.started_at} to {data.finished_at}"
    return f"started {data.started_at}" if data.started_at else ""


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _latency_text(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def _version() -> str:
    try:
        return metadata.version("segment-dispatcher")
    except metadata.PackageNotFoundError:
        return "(source tree)"
