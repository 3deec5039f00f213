"""The run report: ``DIR/report.html``, one self-contained page that opens offline.

    data = report_data(Path("out"))              # from the run's output directory
    path = write_report(Path("out"), data)       # out/report.html

``ReportData`` is what the page draws; ``report_data`` fills it from ``run.json``,
``summary.json``, ``timeline.json`` and ``outcomes.jsonl``, ``report_data_from_ledger``
from a SQLite ledger. ``render_report`` returns the page as a string.
"""

from dispatcher.report.data import (
    ReportData,
    RunConfig,
    config_summary,
    report_data,
    report_data_from_ledger,
)
from dispatcher.report.page import REPORT_FILE, render_report, write_report
from dispatcher.report.stats import OutcomeStats, Reason

__all__ = [
    "REPORT_FILE",
    "OutcomeStats",
    "Reason",
    "ReportData",
    "RunConfig",
    "config_summary",
    "render_report",
    "report_data",
    "report_data_from_ledger",
    "write_report",
]
