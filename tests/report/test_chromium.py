"""The report in a real browser: headless Chromium (Debian's ``chromium`` package) opens
``report.html`` offline and paints every chart.

How "paints" is checked, honestly: the page is screenshotted as it is, and once per
chart with that chart's lines made transparent by an added style rule (the layout stays
the same). Each chart's lines must change many pixels: an empty or broken chart changes
none. The DOM Chromium built must also hold each chart's SVG with its line paths.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from dispatcher.report import report_data, write_report
from tests.report.htmlparse import Page
from tests.report.synth import outcome, synthetic_timeline, write_run_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)",
)
WINDOW = (1280, 2600)
CHARTS = ["sends", "settled", "hook", "latency"]


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
         # Chromium's own services (updates, time, accounts) try to reach Google even
         # so: no name resolves and every request goes to a closed local port instead.
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def screenshot(tmp_path: Path, page: Path) -> Image.Image:
    png = page.with_suffix(".png")
    done = chromium(tmp_path, page, f"--screenshot={png}")
    assert png.is_file(), done.stderr[-2000:]
    with Image.open(png) as image:
        shot = image.convert("RGB")
    assert shot.size == WINDOW
    return shot


def changed_pixels(a: Image.Image, b: Image.Image) -> int:
    """Pixels whose colour differs between ``a`` and ``b`` in any channel."""
    red, green, blue = ImageChops.difference(a, b).split()
    differs = ImageChops.lighter(ImageChops.lighter(red, green), blue)  # per pixel: max
    return a.width * a.height - differs.histogram()[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-minute run on three channels, with a hook, failures and a ceiling."""
    out = tmp_path_factory.mktemp("chromium") / "out"
    lines = [outcome(i, "SUCCESS", channel=("SMS", "EMAIL", "GCM")[i % 3]) for i in range(300)]
    lines += [outcome(i, "PERMANENT_FAILURE", "refused <b>x</b>") for i in range(300, 310)]
    write_run_dir(out, lines, timeline=synthetic_timeline(600, rate=300, ceiling=450))
    return write_report(out, report_data(out))


def test_chromium_builds_every_chart_in_the_dom(report: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, report, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    figures = re.findall(r'<figure class="chart" data-chart="(\w+)">(.*?)</figure>', dom, re.S)
    assert [name for name, _ in figures] == CHARTS
    for name, body in figures:
        page = Page(body)
        assert page.tags.get("svg", 0) >= 1, name
        lines = [a for tag, a in page.attrs
                 if tag == "path" and "line" in (a.get("class") or "").split()]  # fmt: skip
        drawn = [a for a in lines if len(re.findall(r"[\d.]+ [\d.]+", a.get("d") or "")) >= 2]
        assert drawn, f"{name}: no line with two points"


def test_chromium_paints_every_chart(report: Path, tmp_path: Path) -> None:
    html = report.read_text()
    ids = re.findall(r'<figure class="chart" data-chart="\w+"><h3>[^<]*</h3><svg[^>]*'
                     r'id="(chart-[0-9a-f-]+)"', html)  # fmt: skip
    assert len(ids) == len(CHARTS)
    shown = screenshot(tmp_path, report)
    # Not a blank page: the report paints far more than its background.
    blank = Image.new("RGB", shown.size, (0xF6, 0xF7, 0xF9))
    assert changed_pixels(shown, blank) > 100_000
    for name, chart_id in zip(CHARTS, ids, strict=True):
        hide = (f"<style>#{chart_id} .series path {{ stroke: transparent !important; }}"
                "</style></head>")  # fmt: skip
        control = report.with_name(f"hidden-{name}.html")
        control.write_text(html.replace("</head>", hide, 1))
        changed = changed_pixels(shown, screenshot(tmp_path, control))
        # A line across the plot alone is ~900 pixels; each chart draws several.
        assert changed > 1500, f"the {name} chart paints only {changed} pixels"


def page_requests(tmp_path: Path, page: Path) -> list[str]:
    """URLs the page itself asked for (not Chromium's own background services, whose
    requests have no origin), from Chromium's network log of loading it."""
    log = tmp_path / f"{page.stem}.netlog.json"
    done = chromium(tmp_path, page, "--dump-dom", f"--log-net-log={log}")
    assert done.returncode == 0, done.stderr[-2000:]
    text = log.read_text(errors="replace")
    try:
        events = json.loads(text)
    except json.JSONDecodeError:  # cut short at exit: close the event list
        events = json.loads(text.rstrip().rstrip(",") + "]}")
    kinds = {v: k for k, v in events["constants"]["logEventTypes"].items()}
    urls = []
    for event in events["events"]:
        params = event.get("params") or {}
        kind = kinds.get(event["type"])
        if (
            kind == "URL_REQUEST_START_JOB"
            and "url" in params
            and params.get("initiator") != "not an origin"
        ):
            urls.append(str(params.get("url")))
        if kind == "TCP_CONNECT" and "address" in params:  # confined: nothing leaves
            assert params["address"].startswith(("127.", "[::1]")), params
    return urls


def test_the_report_loads_nothing(report: Path, tmp_path: Path) -> None:
    assert page_requests(tmp_path, report) == []
    # The control: a page that does load something is seen doing so.
    control = report.with_name("loads-an-image.html")
    control.write_text('<p>x</p><img src="http://report-test.invalid/x.png">')
    assert page_requests(tmp_path, control) == ["http://report-test.invalid/x.png"]
