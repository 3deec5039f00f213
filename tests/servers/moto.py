"""Launch ``moto_server`` as a subprocess on a free loopback port.

moto is a separate process on purpose: in-process (``ThreadedMotoServer``) it shares the
GIL with the code under test. Use it as a session-scoped fixture and ``reset()`` between
tests::

    with MotoServer() as moto:
        os.environ["AWS_ENDPOINT_URL_SESV2"] = moto.url
        ...
        moto.data()["sesv2"]  # what moto holds, from GET /moto-api/data.json
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any, Self

from tests.servers import http_json

__all__ = ["MotoServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MotoServer:
    """``python -m moto.server -H 127.0.0.1 -p PORT``, killed on exit."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 ready_timeout: float = 30.0, log: Path | None = None) -> None:  # fmt: skip
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.ready_timeout = ready_timeout
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                http_json(f"{self.url}/moto-api/data.json", timeout=2.0)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server not ready on {self.url}") from exc
                time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource (``POST /moto-api/reset``)."""
        http_json(f"{self.url}/moto-api/reset", {})

    def data(self) -> dict[str, Any]:
        """Everything moto holds (``GET /moto-api/data.json``)."""
        return http_json(f"{self.url}/moto-api/data.json")  # type: ignore[no-any-return]
