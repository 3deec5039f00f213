"""Channel sender and rate limiter benchmark.

    python benchmarks/bench_channels.py [--quick]

For each sender (SES v2, SMS v2, Pinpoint push) against its local wire-compatible server
running in a *separate process* (``dispatcher.testing``; never moto, which measures itself):
sends/s and client CPU per send (``time.process_time()`` of this process only).

Then the send-rate ceiling *as the provider sees it*: each sender paced under a ceiling
(``Pacing``, a permit per request), the server stamping every call's arrival; printed
are the busiest one-second window of arrivals at the server beside the ceiling (it must
never exceed it) and the sustained rate at the server (first to last arrival). Last, the
limiter's own CPU per grant, on the real clock and at 20,000/s on a virtual one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatcher.aws import AwsClients  # noqa: E402
from dispatcher.channels import push, ses, sms  # noqa: E402
from dispatcher.channels.base import Message, PacedSender, SenderContext  # noqa: E402
from dispatcher.model import Status  # noqa: E402
from dispatcher.ratelimit import Pacing, RateLimiter  # noqa: E402
from dispatcher.testing import ServerProcess  # noqa: E402
from tests.channels.wire import busiest, sustained  # noqa: E402

REGION = "us-east-1"
POOL = 64


def messages(
    n: int, channel: str, address: Callable[[int], str], template: dict[str, Any]
) -> list[Message]:
    email = channel == "EMAIL"
    return [
        Message(
            endpoint_id=f"ep-{i}",
            line=i + 1,
            channel_type=channel,
            address=address(i),
            title=f"Hello {i}",
            body=f"Your offer number {i} is waiting.",
            html_body=f"<p>Your offer number <b>{i}</b> is waiting.</p>" if email else None,
            template=template,
        )
        for i in range(n)
    ]


async def drive(
    sender: PacedSender, batch: list[Message], workers: int
) -> tuple[float, float, int]:
    """Send all messages in ``max_batch`` slices with ``workers`` concurrent ``send`` calls
    (the send stage's shape)."""
    size = sender.max_batch
    slices = [batch[i : i + size] for i in range(0, len(batch), size)]
    ok = 0
    send_stream, receive_stream = anyio.create_memory_object_stream[list[Message]](workers)

    async def worker() -> None:
        nonlocal ok
        async with receive_stream.clone() as inbox:
            async for chunk in inbox:
                results = await sender.send(chunk)
                ok += sum(r.status is Status.SUCCESS for r in results)

    wall, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
        async with send_stream:
            for chunk in slices:
                await send_stream.send(chunk)
        receive_stream.close()
    return time.perf_counter() - wall, time.process_time() - cpu, ok


async def bench_sender(
    name: str, factory: Any, options: dict[str, Any], msgs: list[Message], workers: int,
    rate: float | None = None,
) -> None:  # fmt: skip
    with ServerProcess(name) as server:
        clients = AwsClients(REGION, max_pool_connections=POOL)
        try:
            ctx = SenderContext("bench-app", REGION, "123456789012", clients, REPO,
                                concurrency=workers)  # fmt: skip
            sender = factory(name.upper(), {"endpoint_url": server.url, **options}, ctx)
            await drive(sender, msgs[: sender.max_batch * 2], 2)  # warm up: client, pool
            if rate is not None:
                sender.pace(Pacing(RateLimiter(rate)))
            server.reset()
            wall, cpu, ok = await drive(sender, msgs, workers)
            arrivals = server.arrivals()
        finally:
            await clients.aclose()
    n = len(msgs)
    if rate is not None:
        most = busiest(arrivals)
        at_wire = sustained(arrivals)
        print(
            f"{name:5} {n:7d} msgs  {ok:7d} ok  ceiling {rate:6.0f}/s  busiest 1-s window at "
            f"the server {most:6d} ({most / rate:6.1%} of the ceiling)  sustained at the "
            f"server {at_wire:8.1f}/s ({at_wire / rate:6.1%})  ({workers} workers, "
            f"batch {sender.max_batch})"
        )
        return
    print(
        f"{name:5} {n:7d} msgs  {ok:7d} ok  {n / wall:9.0f} sends/s  "
        f"{cpu / n * 1e6:7.0f} us CPU/send  (batch {sender.max_batch}, {workers} workers)"
    )


def max_in_window(times: list[float]) -> int:
    return busiest([(t, 1) for t in times])


async def bench_limiter(rate: float, seconds: float, tasks: int) -> None:
    grants: list[float] = []  # the limiter's own grant times
    stamps: list[float] = []  # as the acquiring tasks see them
    limiter = RateLimiter(rate, on_grant=lambda t, n: grants.extend([t] * n))
    clock = time.monotonic
    end = clock() + seconds

    async def taker() -> None:
        while clock() < end:
            with await limiter.acquire():
                stamps.append(clock())

    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(taker)
    cpu = time.process_time() - cpu
    in_run = sum(1 for t in grants if t < end)
    print(
        f"limiter  configured {rate:7.0f}/s  achieved {in_run / seconds:8.1f}/s "
        f"({in_run / seconds / rate:6.1%})  busiest 1-s window {max_in_window(grants)} "
        f"(seen by the tasks {max_in_window(stamps)})  "
        f"{cpu / max(1, len(grants)) * 1e6:5.1f} us CPU/grant  ({tasks} tasks, acquire(1))"
    )


async def bench_limiter_virtual(rate: float, grants: int) -> None:
    now = [0.0]

    async def sleep(d: float) -> None:
        now[0] += d

    limiter = RateLimiter(rate, clock=lambda: now[0], sleep=sleep)
    cpu = time.process_time()
    for _ in range(grants):
        (await limiter.acquire()).done()
    cpu = time.process_time() - cpu
    print(
        f"limiter  configured {rate:7.0f}/s  virtual clock: {grants} grants in {now[0]:.2f} s "
        f"virtual, {cpu / grants * 1e6:5.2f} us CPU/grant"
    )


async def main(quick: bool) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    scale = 1 if quick else 3
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; servers in subprocesses")
    mail = {"FromAddress": "news@example.com"}
    emails = messages(1000 * scale, "EMAIL", lambda i: f"user{i}@example.com", mail)
    await bench_sender("ses", ses.create, {"max_batch": 10}, emails, 6)
    text = {"OriginationNumber": "+12065550199", "MessageType": "TRANSACTIONAL"}
    texts = messages(1000 * scale, "SMS", lambda i: f"+1425555{i % 10000:04d}", text)
    await bench_sender("sms", sms.create, {"max_batch": 10}, texts, 6)
    tokens = messages(
        5000 * scale, "GCM", lambda i: f"fcm-token-{i:08d}-" + "x" * 120,
        {"Action": "URL", "Url": "https://example.com/offer", "JsonBody": '{"k": "v"}'},
    )  # fmt: skip
    await bench_sender("push", push.create, {}, tokens, 4)
    # The ceiling at the wire: a few seconds at each rate (5/s: 15 s in the full run).
    seconds = 3 if quick else 10
    for rate in (5, 250):
        await bench_sender("sms", sms.create, {"max_batch": 10}, texts[: rate * seconds], 16,
                           rate=rate)  # fmt: skip
    await bench_sender("ses", ses.create, {"max_batch": 10, "account_quota": False},
                       emails[: 250 * seconds], 16, rate=250)  # fmt: skip
    await bench_sender("push", push.create, {}, (tokens * 2)[: 2_000 * seconds], 4, rate=2_000)
    await bench_limiter(2_000, 2.0 if quick else 5.0, 16)
    await bench_limiter_virtual(20_000, 50_000 if quick else 200_000)


# ---------------------------------------------------------------------------------------
# Issue 14 target 4 and issue 17's wire ceiling, as figures for ``benchmarks/run.py``
# ---------------------------------------------------------------------------------------

SEND_TARGET_MS = 0.3
"""Client CPU per SES or SMS send (issue 14, target 4)."""
PUSH_TARGET_US = 25.0
"""Client CPU per push address (issue 14, target 4)."""


async def _sender_cpu(url: str, name: str, factory: Any, options: dict[str, Any],
                      msgs: list[Message], workers: int) -> float:  # fmt: skip
    """Client CPU seconds per message of the dispatcher's sender."""
    clients = AwsClients(REGION, max_pool_connections=POOL)
    try:
        ctx = SenderContext("bench-app", REGION, "123456789012", clients, REPO,
                            concurrency=workers)  # fmt: skip
        sender = factory(name.upper(), {"endpoint_url": url, **options}, ctx)
        await drive(sender, msgs[: sender.max_batch * 2], 2)  # warm up: client, pool
        _, cpu, ok = await drive(sender, msgs, workers)
    finally:
        await clients.aclose()
    if ok != len(msgs):
        raise SystemExit(f"{name}: {len(msgs) - ok} of {len(msgs)} sends failed")
    return cpu / len(msgs)


async def _stock_cpu(
    url: str, name: str, calls: list[dict[str, Any]], per_call: int, in_flight: int
) -> float:
    """Client CPU seconds per message of stock aiobotocore calls, ``in_flight`` at once."""
    service, operation = {"ses": ("sesv2", "send_email"),
                          "sms": ("pinpoint-sms-voice-v2", "send_text_message"),
                          "push": ("pinpoint", "send_messages")}[name]  # fmt: skip
    clients = AwsClients(REGION, max_pool_connections=POOL)
    try:
        client = await clients.client(service, endpoint_url=url)
        method = getattr(client, operation)
        for kwargs in calls[:4]:  # warm up
            await method(**kwargs)
        slots = anyio.Semaphore(in_flight)

        async def one(kwargs: dict[str, Any]) -> None:
            try:
                await method(**kwargs)
            finally:
                slots.release()

        cpu = time.process_time()
        async with anyio.create_task_group() as tg:
            for kwargs in calls:
                await slots.acquire()  # a slot before the task: no parked tasks
                tg.start_soon(one, kwargs)
        cpu = time.process_time() - cpu
    finally:
        await clients.aclose()
    return cpu / (len(calls) * per_call)


async def _wire_window(server: ServerProcess, rate: float, seconds: float) -> dict[str, float]:
    """SMS paced at ``rate`` (16 workers, batch 10): busiest 1-s window at the server."""
    text = {"OriginationNumber": "+12065550199", "MessageType": "TRANSACTIONAL"}
    msgs = messages(int(rate * seconds), "SMS", lambda i: f"+1425555{i % 10000:04d}", text)
    clients = AwsClients(REGION, max_pool_connections=POOL)
    try:
        ctx = SenderContext("bench-app", REGION, "123456789012", clients, REPO,
                            concurrency=16)  # fmt: skip
        sender = sms.create("SMS", {"endpoint_url": server.url, "max_batch": 10}, ctx)
        await drive(sender, msgs[:20], 2)
        sender.pace(Pacing(RateLimiter(rate)))
        server.reset()
        await drive(sender, msgs, 16)
        arrivals = server.arrivals()
    finally:
        await clients.aclose()
    return {"ceiling": rate, "messages": len(msgs), "busiest": busiest(arrivals),
            "sustained": round(sustained(arrivals), 1)}  # fmt: skip


async def targets(n: int, wire_seconds: float) -> dict[str, Any]:
    """Issue 14 target 4 (client CPU per send, the sender beside stock aiobotocore calls
    of the same requests, ``n`` messages each; push 10 n addresses) and issue 17's
    busiest one-second window at the wire (``wire_seconds`` at 250/s). One wire server
    per channel serves all three measurements."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    mail = {"FromAddress": "news@example.com"}
    emails = messages(n, "EMAIL", lambda i: f"user{i}@example.com", mail)
    text = {"OriginationNumber": "+12065550199", "MessageType": "TRANSACTIONAL"}
    texts = messages(n, "SMS", lambda i: f"+1425555{i % 10000:04d}", text)
    push_template = {"Action": "URL", "Url": "https://example.com/offer", "JsonBody": '{"k": "v"}'}
    tokens = messages(10 * n, "GCM", lambda i: f"fcm-token-{i:08d}-" + "x" * 120, push_template)
    out: dict[str, Any] = {}
    with ServerProcess("ses") as ses_server, ServerProcess("sms") as sms_server, \
            ServerProcess("push") as push_server:  # fmt: skip
        out["ses"] = {
            "sender": await _sender_cpu(ses_server.url, "ses", ses.create,
                                        {"max_batch": 10, "account_quota": False}, emails, 6),
            "stock": await _stock_cpu(ses_server.url, "ses", [{
                "FromEmailAddress": "news@example.com",
                "Destination": {"ToAddresses": [m.address]},
                "Content": {"Simple": {"Subject": {"Data": m.title or "", "Charset": "UTF-8"},
                                       "Body": {"Text": {"Data": m.body, "Charset": "UTF-8"},
                                                "Html": {"Data": m.html_body,
                                                         "Charset": "UTF-8"}}}},
            } for m in emails], 1, 60),
        }  # fmt: skip
        out["sms"] = {
            "sender": await _sender_cpu(sms_server.url, "sms", sms.create, {"max_batch": 10},
                                        texts, 6),
            "stock": await _stock_cpu(sms_server.url, "sms", [{
                "DestinationPhoneNumber": m.address, "MessageBody": m.body,
                "OriginationIdentity": "+12065550199", "MessageType": "TRANSACTIONAL",
            } for m in texts], 1, 60),
        }  # fmt: skip
        out["push"] = {
            "sender": await _sender_cpu(push_server.url, "push", push.create, {}, tokens, 4),
            "stock": await _stock_cpu(push_server.url, "push", [{
                "ApplicationId": "bench-app", "MessageRequest": {
                    "Addresses": {m.address: {"ChannelType": "GCM", "BodyOverride": m.body,
                                              "TitleOverride": m.title}
                                  for m in tokens[i : i + 100]},
                    "MessageConfiguration": {"GCMMessage": {"Action": "URL",
                                                            "Url": "https://example.com/offer"}}},
            } for i in range(0, len(tokens), 100)], 100, 4),
        }  # fmt: skip
        out["wire"] = await _wire_window(sms_server, 250.0, wire_seconds)
    return out


SIZES = {"full": (1500, 4.0), "quick": (300, 2.0), "smoke": (60, 1.5)}
"""``--targets`` sizes: (messages per channel, seconds of the wire window)."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, shorter runs")
    parser.add_argument("--smoke", action="store_true",
                        help="with --targets: the smallest sizes (a check of the harness, "
                             "not a measurement)")
    parser.add_argument("--targets", type=Path, metavar="JSON",
                        help="only issue 14's target 4 and the wire window, as JSON to this file")
    cli = parser.parse_args()
    if cli.targets:
        import json

        size = SIZES["smoke" if cli.smoke else "quick" if cli.quick else "full"]
        cli.targets.write_text(json.dumps(anyio.run(targets, *size), indent=2) + "\n")
    else:
        anyio.run(main, cli.quick)
