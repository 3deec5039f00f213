"""Local wire-compatible AWS endpoints for tests and benchmarks, and their launchers.

* ``tests.servers.sms.SmsServer``   -- ``pinpoint-sms-voice-v2`` ``SendTextMessage`` (JSON 1.0)
* ``tests.servers.push.PushServer`` -- Pinpoint ``SendMessages`` (rest-json)
* ``tests.servers.ses.SesServer``   -- SES v2 ``SendEmail`` (rest-json; faults and benchmarks)
* ``tests.servers.moto.MotoServer`` -- a ``moto_server`` subprocess (SES v2, S3, SQS, ...)

Each ``WireServer`` runs in-process (``async with SmsServer() as s``) or as a subprocess
(``ServerProcess("sms")``, i.e. ``python -m tests.servers.sms --port 0``).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import orjson

__all__ = ["REPO_ROOT", "ServerProcess", "http_json"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def http_json(url: str, data: Any = None, *, timeout: float = 5.0) -> Any:
    """GET (or POST ``data`` as JSON to) ``url`` and decode the JSON answer."""
    body = None if data is None else orjson.dumps(data)
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return orjson.loads(raw) if raw else None


class ServerProcess:
    """One of this package's servers in a subprocess: ``with ServerProcess("sms") as s``.

    Waits for the ``READY <url>`` line, and terminates (then kills) the process on exit.
    The test endpoints are wrapped: ``messages()``, ``calls()``, ``arrivals()``, ``stats()``,
    ``set_faults(**faults)``, ``reset()``.
    """

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 0,
                 ready_timeout: float = 15.0) -> None:  # fmt: skip
        self.name = name
        self.args = [sys.executable, "-m", f"tests.servers.{name}", "--host", host,
                     "--port", str(port)]  # fmt: skip
        self.ready_timeout = ready_timeout
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
        self.process = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                break
            if self.process.poll() is not None:
                break
        if not line.startswith(b"READY "):
            self.stop()
            raise RuntimeError(f"{' '.join(self.args)} did not start (got {line!r})")
        self.url = line.split()[1].decode()
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[dict[str, Any]]:
        return http_json(f"{self.url}/_test/messages")  # type: ignore[no-any-return]

    def calls(self) -> list[dict[str, Any]]:
        return http_json(f"{self.url}/_test/calls")  # type: ignore[no-any-return]

    def arrivals(self) -> list[tuple[float, int]]:
        """``(arrival time, messages)`` per API call (``time.monotonic()`` of the server)."""
        return [(float(t), int(n)) for t, n in http_json(f"{self.url}/_test/arrivals")]

    def stats(self) -> dict[str, Any]:
        return http_json(f"{self.url}/_test/stats")  # type: ignore[no-any-return]

    def set_faults(self, **faults: Any) -> None:
        http_json(f"{self.url}/_test/faults", faults)

    def reset(self) -> None:
        http_json(f"{self.url}/_test/reset", {})
