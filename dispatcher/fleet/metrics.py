"""Worker metrics in the Prometheus text exposition format (``GET /metrics``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from dispatcher.fleet.worker import Worker


def render(worker: Worker) -> str:
    """The worker's counters as Prometheus text (version 0.0.4)."""
    s = worker.stats
    lines = [
        "# HELP dispatcher_endpoints_total Segment records settled by this worker, by status.",
        "# TYPE dispatcher_endpoints_total counter",
    ]
    lines += [f'dispatcher_endpoints_total{{status="{status}"}} {n}'
              for status, n in sorted(s.by_status.items())]  # fmt: skip
    lines += [
        "# HELP dispatcher_sends_total Messages sent successfully (rate() gives sends/s).",
        "# TYPE dispatcher_sends_total counter",
        f"dispatcher_sends_total {s.sends}",
        "# HELP dispatcher_rate_lease_writes_total DynamoDB writes sharing the send-rate ceilings.",
        "# TYPE dispatcher_rate_lease_writes_total counter",
        f"dispatcher_rate_lease_writes_total {s.lease_writes}",
        "# HELP dispatcher_hook_invocations_total Hook calls, retries included.",
        "# TYPE dispatcher_hook_invocations_total counter",
        f"dispatcher_hook_invocations_total {s.hook_invocations}",
        "# HELP dispatcher_hook_latency_seconds From a chunk's first hook attempt to its answer.",
        "# TYPE dispatcher_hook_latency_seconds summary",
        f"dispatcher_hook_latency_seconds_sum {s.hook_seconds:.6f}",
        f"dispatcher_hook_latency_seconds_count {s.hook_chunks}",
        "# HELP dispatcher_shards_in_flight Shard jobs being worked on.",
        "# TYPE dispatcher_shards_in_flight gauge",
        f"dispatcher_shards_in_flight {s.in_flight}",
        "# HELP dispatcher_shards_total Shard jobs finished by this worker, by result.",
        "# TYPE dispatcher_shards_total counter",
        f'dispatcher_shards_total{{result="done"}} {s.shards_done}',
        f'dispatcher_shards_total{{result="failed"}} {s.shards_failed}',
        f'dispatcher_shards_total{{result="handed_back"}} {s.shards_handed_back}',
        "# HELP dispatcher_uptime_seconds Seconds since the worker started.",
        "# TYPE dispatcher_uptime_seconds gauge",
        f"dispatcher_uptime_seconds {time.monotonic() - s.started:.3f}",
    ]
    return "\n".join(lines) + "\n"


async def serve_metrics(worker: Worker, host: str, port: int) -> web.AppRunner:
    """Start ``GET /metrics`` (and ``/healthz``); the caller cleans the runner up."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=render(worker), content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})  # fmt: skip

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
