"""Synthetic runs for the report tests: a Timeline driven through a fake clock exactly as
the pipeline drives it (batches of sends, settled batches, hook calls), and the output
directory files a run leaves."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from dispatcher.timeline import Timeline


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def synthetic_timeline(
    seconds: int,
    *,
    rate: int = 400,
    ceiling: int | None = 500,
    channels: Iterable[str] = ("SMS", "EMAIL", "GCM"),
    hook: bool = True,
    failures: float = 0.02,
    seed: int = 7,
) -> Timeline:
    """A run of ``seconds`` seconds sending about ``rate`` messages a second."""
    rng = random.Random(seed)
    clock = FakeClock()
    timeline = Timeline(clock.now, clock=clock, ceiling=ceiling,
                        started_at="2026-11-29T10:00:00.000Z")  # fmt: skip
    names = list(channels)
    for second in range(seconds):
        wave = 0.75 + 0.25 * math.sin(second / 40)
        for step in range(4):  # four batches a second
            clock.now = 1000.0 + second + step / 4 + 0.01
            if hook:
                for _ in range(2):
                    latency = rng.lognormvariate(math.log(0.06 + 0.03 * wave), 0.5)
                    timeline.hook(latency, ok=rng.random() > failures)
            for i, channel in enumerate(names):
                n = int(rate * wave / 4 / (i + 1))
                timeline.sent(n, channel)
                failed = int(n * failures)
                timeline.outcome("SUCCESS", n - failed)
                if failed:
                    timeline.outcome("PERMANENT_FAILURE", failed)
            timeline.outcome("FILTERED", rng.randint(0, 3))
        if second % 97 == 13:
            timeline.throttled(rng.randint(1, 5))
    clock.now = 1000.0 + seconds
    timeline.finish()
    return timeline


def write_run_dir(
    out: Path,
    outcomes: Iterable[dict[str, Any]],
    *,
    run_id: str = "run-1",
    timeline: Timeline | None = None,
    summary: bool = True,
    run: bool = True,
    config: str = "",
) -> Path:
    """The files ``dispatcher run`` leaves in DIR (what the report reads)."""
    out.mkdir(parents=True, exist_ok=True)
    by_status: dict[str, int] = {}
    with (out / "outcomes.jsonl").open("wb") as f:
        for o in outcomes:
            by_status[o["Status"]] = by_status.get(o["Status"], 0) + 1
            f.write(orjson.dumps(o) + b"\n")
    if run:
        (out / "run.json").write_bytes(orjson.dumps({
            "RunId": run_id, "Config": config, "Segment": "segment.jsonl",
            "CampaignId": "camp-1", "ApplicationId": "app-1",
            "StartedAt": "2026-11-29T10:00:00.000Z",
        }))  # fmt: skip
    if summary:
        (out / "summary.json").write_bytes(orjson.dumps({
            "RunId": run_id, "Total": sum(by_status.values()), "ByStatus": by_status,
            "HookInvocations": 7, "StartedAt": "2026-11-29T10:00:00.000Z",
            "FinishedAt": "2026-11-29T10:00:03.500Z",
        }))  # fmt: skip
    if timeline is not None:
        timeline.write(out / "timeline.json")
    return out


def outcome(i: int, status: str, reason: str | None = None, *, treatment: str | None = "0",
            channel: str = "SMS") -> dict[str, Any]:  # fmt: skip
    return {"EndpointId": f"ep-{i}", "Line": i, "Status": status, "Reason": reason,
            "ChannelType": channel, "TreatmentId": treatment}  # fmt: skip
