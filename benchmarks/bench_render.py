"""Message rendering: today's Mustache fast path vs the Handlebars engine, same run.

    python benchmarks/bench_render.py [--endpoints 200000] [--repeat 5] [--json PATH]

Each endpoint renders 3 templates, as an email campaign does (the SMS body, the email
subject, the email HTML with escaping) over realistic endpoint definitions
(``benchmarks/gen.py``: ~350-byte records, attribute values as lists). Scenarios
alternate within one process so machine noise hits them alike; the figure is CPU time
(``time.process_time``: on a shared 2-core box wall time mostly measures the
neighbours), the best of ``--repeat`` rounds, in microseconds per endpoint (3 renders),
with ratios to the Mustache path:

- ``mustache``: ``dispatcher.render.Template`` (pystache's tree flattened to parts).
- ``handlebars``: ``dispatcher.handlebars`` on the same sources.
- ``handlebars_missing``: the same, collecting the missing-variable report.
- ``handlebars_pinpoint``: Pinpoint's own form, ``{{User.UserAttributes.FirstName.[0]}}``.
- ``handlebars_helpers``: a helper-heavy message (if/else, eq, each, upper, capitalize,
  a subexpression) in place of the SMS body, to show what helpers cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SMS = (
    "Hi {{User.UserAttributes.FirstName}}, your {{Attributes.Tier}} offers in {{Location.City}}"
    " are ready."
)
SUBJECT = "{{User.UserAttributes.FirstName}}, your {{Attributes.Tier}} status is in"
HTML = (
    "<html><body><p>Hi {{User.UserAttributes.FirstName}},</p><p>Your tier: <b>{{Attributes.Tier}}"
    "</b>. You like {{Attributes.Interests}}.</p><p>Seen in {{Location.City}}, "
    '{{Location.Country}}. <a href="https://example.com/u/{{Id}}?c=1&amp;t=2">Manage</a></p>'
    "</body></html>"
)
HELPERS = (
    "{{#if User.UserAttributes.FirstName.[0]}}Hi {{capitalize (lower User.UserAttributes."
    'FirstName.[0])}}{{else}}Hi there{{/if}}, {{#eq Attributes.Tier.[0] "gold"}}gold perks'
    "{{else}}{{upper Attributes.Tier.[0]}} perks{{/eq}} in {{Location.City}}: "
    "{{#each Attributes.Interests}}{{#unless @first}}, {{/unless}}{{this}}{{/each}}."
)


def _pinpoint_form(source: str) -> str:
    # Attribute values are lists: Pinpoint's documents index them.
    for name in ("User.UserAttributes.FirstName", "Attributes.Tier"):
        source = source.replace("{{" + name + "}}", "{{" + name + ".[0]}}")
    return source


def renderers() -> dict[str, Callable[[dict[str, Any], dict[str, Any]], object]]:
    """One function per scenario rendering the 3 templates for one endpoint."""
    from benchmarks.legacy_render import Template
    from dispatcher import handlebars

    old = [Template(SMS), Template(SUBJECT), Template(HTML, html_mode=True)]

    def hb(sources: tuple[str, str, str]) -> list[handlebars.Template]:
        return [
            handlebars.compile(sources[0], html=False, where="SMS.Body"),
            handlebars.compile(sources[1], html=False, where="Email.Subject"),
            handlebars.compile(sources[2], html=True, where="Email.HtmlPart"),
        ]

    new = hb((SMS, SUBJECT, HTML))
    pinpoint = hb((_pinpoint_form(SMS), _pinpoint_form(SUBJECT), _pinpoint_form(HTML)))
    helpers = hb((HELPERS, SUBJECT, HTML))

    def render_old(endpoint: dict[str, Any], extra: dict[str, Any]) -> object:
        return [t.render(endpoint, extra) for t in old]

    def render_with(templates: list[handlebars.Template], missing: bool) -> Callable[..., object]:
        def render(endpoint: dict[str, Any], extra: dict[str, Any]) -> object:
            report: list[str] | None = [] if missing else None
            return [t.render(endpoint, extra, report) for t in templates]

        return render

    return {
        "mustache": render_old,
        "handlebars": render_with(new, False),
        "handlebars_missing": render_with(new, True),
        "handlebars_pinpoint": render_with(pinpoint, False),
        "handlebars_helpers": render_with(helpers, False),
    }


def run_bench(endpoints: int, repeat: int) -> dict[str, Any]:
    from benchmarks.gen import endpoint

    # A pool of distinct records, cycled: 200k full records would not fit a shared box.
    pool = [endpoint(i) for i in range(min(endpoints, 10_000))]
    work = [(record, {"Id": record.pop("Id")}) for record in pool]
    scenarios = renderers()
    first = {name: render(*work[0]) for name, render in scenarios.items()}
    best: dict[str, float] = {name: float("inf") for name in scenarios}
    for _ in range(repeat):
        for name, render in scenarios.items():
            t0 = time.process_time()
            done = 0
            while done < endpoints:
                for record, extra in work[: endpoints - done]:
                    render(record, extra)
                done += min(len(work), endpoints - done)
            best[name] = min(best[name], (time.process_time() - t0) / endpoints * 1e6)
    base = best["mustache"]
    return {
        "endpoints": endpoints,
        "repeat": repeat,
        "us_per_endpoint": {k: round(v, 3) for k, v in best.items()},
        "ratio_to_mustache": {k: round(v / base, 3) for k, v in best.items()},
        "sample": {k: v for k, v in first.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = run_bench(args.endpoints, args.repeat)
    print(f"{args.endpoints} endpoints x 3 templates, best of {args.repeat} (same run):")
    for name, us in report["us_per_endpoint"].items():
        ratio = report["ratio_to_mustache"][name]
        print(f"  {name:22s} {us:8.2f} us/endpoint   x{ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
