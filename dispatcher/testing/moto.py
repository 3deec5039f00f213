"""Launch a moto server as a subprocess, bound to a port the kernel picks.

moto is a separate process on purpose: in-process (``ThreadedMotoServer``) it shares the
GIL with the code under test. Start one per test session (this project's is the
``moto_server`` fixture in ``tests/conftest.py``); tests keep apart by unique names, or
``reset()`` it when they need an empty account::

    with MotoServer() as moto:
        os.environ["AWS_ENDPOINT_URL_SESV2"] = moto.url
        ...
        moto.data()["sesv2"]  # what moto holds, from GET /moto-api/data.json

The subprocess is this module (``python -m dispatcher.testing.moto --port 0``): it binds
before it prints ``READY <url>``, so no other process can take the port in between
(``moto_server -p PORT`` needs a port chosen, and released, beforehand).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from dispatcher.testing import ServerProcess, http_json

__all__ = ["MotoServer"]


class MotoServer(ServerProcess):
    """moto's WSGI app in a subprocess on ``host:port`` (0: a free port), killed on exit."""

    quiet = True  # moto logs every request

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 ready_timeout: float = 30.0, log: Path | None = None) -> None:  # fmt: skip
        super().__init__("moto", host=host, port=port, ready_timeout=ready_timeout, log=log)

    def reset(self) -> None:
        """Forget every resource (``POST /moto-api/reset``)."""
        http_json(f"{self.url}/moto-api/reset", {})

    def data(self) -> dict[str, Any]:
        """Everything moto holds (``GET /moto-api/data.json``)."""
        return http_json(f"{self.url}/moto-api/data.json")  # type: ignore[no-any-return]


class AtomicDynamoDB:
    """Serve DynamoDB requests one at a time, as DynamoDB applies each write atomically.

    moto checks a ``ConditionExpression`` and then writes, in two steps, on whichever
    server thread has the request: two concurrent conditional puts can both pass their
    condition (seen on a loaded machine as two workers both granted the same ledger
    page). DynamoDB never does that, and the fleet ledger's at-most-once guarantee
    rests on it, so the test server must not either. Other services stay concurrent
    (an SQS long poll must not hold up the rest).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole answer, inside


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``--host``/``--port`` (threaded, as ``moto_server`` does)."""
    parser = argparse.ArgumentParser(prog="python -m dispatcher.testing.moto")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=MotoRequestHandler)  # fmt: skip
    # moto builds some URLs (SQS queue URLs among them) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.port)
    print(f"READY http://{args.host}:{server.port}", flush=True)
    os.dup2(2, 1)  # nobody reads stdout after the READY line: never block on a full pipe
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
