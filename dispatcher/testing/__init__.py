"""Wire-compatible AWS endpoints for tests and benchmarks, and their launchers.

Shipped with the package, so that the project's tests, its benchmarks and your own
tests use the same fakes; nothing in ``dispatcher`` imports this package (``import
dispatcher`` stays light). Servers other than moto need only aiohttp; ``MotoServer``
needs ``moto[server]`` (the ``test`` extra).

* ``dispatcher.testing.sms.SmsServer``   -- ``pinpoint-sms-voice-v2`` ``SendTextMessage`` (JSON 1.0)
* ``dispatcher.testing.push.PushServer`` -- Pinpoint ``SendMessages`` (rest-json)
* ``dispatcher.testing.ses.SesServer``   -- SES v2 ``SendEmail`` (rest-json; faults and benchmarks)
* ``dispatcher.testing.moto.MotoServer`` -- moto in a subprocess (SES v2, S3, SQS, DynamoDB, ...)

Each ``WireServer`` runs in-process (``async with SmsServer() as s``) or as a subprocess
(``ServerProcess("sms")``, i.e. ``python -m dispatcher.testing.sms --port 0``).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, ClassVar, Self

import orjson

__all__ = ["ServerProcess", "http_json"]

_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])
"""The directory ``dispatcher`` is imported from: the subprocess imports the same one."""


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

    quiet: ClassVar[bool] = False
    """Discard the server's stderr unless ``log`` names a file."""

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 0,
                 ready_timeout: float = 15.0, log: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.log = log
        """A file the server's stderr is appended to (else this process's stderr)."""
        self.args = [sys.executable, "-m", f"dispatcher.testing.{name}", "--host", host,
                     "--port", str(port)]  # fmt: skip
        self.ready_timeout = ready_timeout
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (_IMPORT_ROOT, os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
        with ExitStack() as files:
            err: IO[bytes] | int | None = subprocess.DEVNULL if self.quiet else None
            if self.log is not None:
                err = files.enter_context(self.log.open("ab"))
            self.process = subprocess.Popen(
                self.args, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
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
