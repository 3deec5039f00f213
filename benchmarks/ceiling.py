"""The fair ceiling: a plain, durable, single-process Python pipeline doing the same work.

What a careful engineer would write by hand for one campaign send, with nothing of the
dispatcher's architecture (no event loop, no stages, no retries) but the same duties:

- orjson parse of each line; the same eligibility checks and duplicate detection (a
  plain ``set`` of (ChannelType, Address): faster than the dispatcher's flat arrays, and
  ~6x the memory);
- events of at most 50 endpoints through a JSON round trip to the same hook function
  (``benchmarks/hooks.py``), the same result validation (``filter_result``);
- the message rendered from precompiled templates (text and variable parts);
- outcome and outbox lines written with orjson;
- a SQLite ledger (WAL, ``synchronous=NORMAL``): claims of a group of up to 1,000
  records committed *before* their sends, outcomes committed with the next group.

    python benchmarks/ceiling.py SEGMENT    # prints {"seconds", "endpoints", ...}
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.hooks import passthrough  # noqa: E402
from dispatcher.eligibility import structure_error  # noqa: E402
from dispatcher.hooks.result import filter_result  # noqa: E402

GROUP = 1000
CHUNK = 50

# The benchmark campaign's messages (benchmarks/gen.py CONFIG), per ChannelType.
MESSAGES = {
    "SMS": (None, "Hi {{User.UserAttributes.FirstName}}, {{Attributes.Tier}} in {{Location.City}}",
            None),
    "EMAIL": ("Hello {{User.UserAttributes.FirstName}}", "Your tier: {{Attributes.Tier}}",
              "<p>Your tier: {{Attributes.Tier}}</p>"),
    "GCM": ("Offers", "Hi {{User.UserAttributes.FirstName}}", None),
    "APNS": ("Offers", "Hi {{User.UserAttributes.FirstName}}", None),
}  # fmt: skip

Part = str | tuple[tuple[str, ...], bool]


def compile_template(source: str | None, escape: bool) -> list[Part] | None:
    if source is None:
        return None
    parts: list[Part] = []
    for i, piece in enumerate(re.split(r"\{\{([^}]+)\}\}", source)):
        parts.append((tuple(piece.strip().split(".")), escape) if i % 2 else piece)
    return parts


def render(parts: list[Part] | None, d: dict[str, Any]) -> str | None:
    if parts is None:
        return None
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
            continue
        value: Any = d
        for key in p[0]:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list):
            text = ", ".join(value)
        else:
            text = "" if value is None else str(value)
        out.append(html.escape(text) if p[1] else text)
    return "".join(out)


TEMPLATES = {ct: tuple(compile_template(src, escape=(i == 2)) for i, src in enumerate(m))
             for ct, m in MESSAGES.items()}  # fmt: skip


def run(segment: Path, out: Path, hook: Callable[[Any, Any], Any] = passthrough) -> dict[str, Any]:
    db = sqlite3.connect(out / "ledger.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(
        "CREATE TABLE claims (endpoint_id TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID;"
        "CREATE TABLE outcomes (line INTEGER PRIMARY KEY, endpoint_id TEXT, status TEXT, "
        "reason TEXT);"
    )
    outcomes_file = (out / "outcomes.jsonl").open("wb", buffering=1 << 16)
    outbox = (out / "outbox.jsonl").open("ab", buffering=0)
    seen: set[tuple[str, str]] = set()
    settled: list[tuple[int, str | None, str, str | None]] = []
    to_send: list[tuple[int, str, dict[str, Any]]] = []
    chunk: dict[str, tuple[int, dict[str, Any]]] = {}
    config = {"SMSMessage": {"Body": MESSAGES["SMS"][1]}}
    n = invocations = 0

    def settle(line: int, eid: str | None, status: str, reason: str | None = None) -> None:
        settled.append((line, eid, status, reason))
        outcomes_file.write(orjson.dumps({"EndpointId": eid, "Line": line, "Status": status,
                                          "Reason": reason}) + b"\n")  # fmt: skip

    def call_hook() -> None:
        nonlocal chunk, invocations
        event = orjson.dumps({"MessageConfiguration": config, "ApplicationId": "bench-app",
                              "CampaignId": "bench", "TreatmentId": "0",
                              "Endpoints": {k: d for k, (_, d) in chunk.items()}})  # fmt: skip
        invocations += 1
        accepted, _ = filter_result(hook(orjson.loads(event), None), chunk)
        for eid, (line, original) in chunk.items():
            kept = accepted.get(eid)
            if kept is None:
                settle(line, eid, "FILTERED", "left out by the hook")
            else:
                kept["ChannelType"], kept["Address"] = original["ChannelType"], original["Address"]
                to_send.append((line, eid, kept))
        chunk = {}

    def flush_group() -> None:
        # Claims durable before the sends; the previous group's outcomes ride along.
        db.execute("BEGIN")
        db.executemany("INSERT INTO claims VALUES (?, ?)", [(e, ln) for ln, e, _ in to_send])
        db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?)", settled)
        db.execute("COMMIT")
        settled.clear()
        lines = []
        for line, eid, d in to_send:
            title, body, html_body = (render(t, d) for t in TEMPLATES[d["ChannelType"]])
            lines.append(orjson.dumps({"EndpointId": eid, "ChannelType": d["ChannelType"],
                                       "Address": d["Address"], "Title": title, "Body": body,
                                       "HtmlBody": html_body}))  # fmt: skip
            settle(line, eid, "SUCCESS")
        if lines:
            outbox.write(b"\n".join(lines) + b"\n")
        to_send.clear()

    started = time.perf_counter()
    with segment.open("rb") as f:
        for line, raw in enumerate(f, 1):
            n += 1
            try:
                d = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                settle(line, None, "INVALID", str(exc))
                continue
            eid = d.pop("Id", None)
            error = structure_error(d) if isinstance(d, dict) else "not an object"
            if error:
                settle(line, eid, "INVALID", error)
            elif d.get("OptOut") == "ALL":
                settle(line, eid, "OPT_OUT", "opted out")
            elif d.get("EndpointStatus") == "INACTIVE":
                settle(line, eid, "INACTIVE", "inactive")
            elif d["ChannelType"] not in TEMPLATES:
                settle(line, eid, "UNSUPPORTED_CHANNEL", "no message")
            elif (key := (d["ChannelType"], d["Address"].strip())) in seen:
                settle(line, eid, "DUPLICATE_ADDRESS", "already targeted")
            else:
                seen.add(key)
                if eid in chunk:
                    call_hook()
                chunk[eid] = (line, d)
                if len(chunk) == CHUNK:
                    call_hook()
            if len(to_send) + len(settled) >= GROUP:
                flush_group()
        if chunk:
            call_hook()
        flush_group()
        db.execute("BEGIN")
        db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?)", settled)
        db.execute("COMMIT")
    outcomes_file.close()
    outbox.close()
    db.close()
    return {"seconds": time.perf_counter() - started, "endpoints": n,
            "invocations": invocations}  # fmt: skip


def main() -> None:
    segment = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        result = run(segment, Path(tmp))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    if os.environ.get("CEILING_PROFILE"):
        import cProfile

        cProfile.run("main()", sort="cumulative")
    else:
        main()
