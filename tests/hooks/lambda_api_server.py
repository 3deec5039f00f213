"""A small Lambda Invoke API (``POST /2015-03-31/functions/{name}/invocations``) for tests.

It speaks the real wire protocol so the project's real clients (the lean aiohttp path
and aiobotocore) can be driven against it on 127.0.0.1:

* every request's SigV4 ``Authorization`` is verified with botocore's own signer
  against the configured credentials; a bad signature gets Lambda's 403
  ``InvalidSignatureException``;
* known functions echo the event's ``Endpoints`` map back (a FILTER hook that keeps
  everything); unknown ones get 404 ``ResourceNotFoundException`` in the shape botocore
  parses (``X-Amzn-ErrorType`` header + JSON body);
* ``Fault``s injected per function name: any status/headers/body (429 with
  ``Retry-After``, 5xx, ``X-Amz-Function-Error`` Handled/Unhandled, garbage), for the
  first ``times`` calls or forever, optionally after a delay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import anyio
import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

REGION = "us-west-2"
ACCESS_KEY = "AKIDTESTHOOKS0000001"
SECRET_KEY = "test-secret-key-for-sigv4"
SESSION_TOKEN = "test-session-token/with+special=chars"
"""The dummy credentials the tests put in the environment and the server accepts."""

AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class Fault:
    """What a function answers instead of echoing: for the first ``times`` calls (None: all)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    delay: float = 0.0


@dataclass
class SeenRequest:
    function: str  # the decoded FunctionName path parameter
    qualifier: str | None
    raw_path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    signature_problem: str | None


def error_fault(status: int, code: str, message: str, **kw: Any) -> Fault:
    """A Lambda service error in the shape botocore's rest-json parser reads."""
    headers = {"X-Amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws/"}
    headers.update(kw.pop("headers", {}))
    body = orjson.dumps({"Type": "User", "message": message, **kw.pop("extra", {})})
    return Fault(status=status, body=body, headers=headers, **kw)


def function_error_fault(kind: str, error_type: str, message: str, **kw: Any) -> Fault:
    """HTTP 200 with ``X-Amz-Function-Error`` (the function raised or crashed)."""
    body = orjson.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []})
    return Fault(status=200, body=body, headers={"X-Amz-Function-Error": kind}, **kw)


class InvokeApi:
    """The server. ``credentials`` maps access key -> (secret, token) it accepts."""

    def __init__(
        self,
        *,
        region: str,
        credentials: dict[str, tuple[str, str | None]],
        functions: set[str] | None = None,
    ) -> None:
        self.region = region
        self.credentials = credentials
        self.functions = functions if functions is not None else {"echo"}
        self.faults: dict[str, Fault] = {}
        self.requests: list[SeenRequest] = []
        self.release = anyio.Event()  # set at shutdown: ends every delayed answer
        self._arrived = anyio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._invoke)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for_requests(self, count: int) -> None:
        """Wait until ``count`` requests have arrived (answered or not)."""
        while len(self.requests) < count:
            await self._arrived.wait()

    # -- signature ----------------------------------------------------------------------

    def _verify(self, request: web.Request, body: bytes) -> str | None:
        """None if the SigV4 signature is valid, else what is wrong with it."""
        header = request.headers.get("Authorization", "")
        match = AUTH_RE.fullmatch(header)
        if match is None:
            return f"malformed Authorization header {header!r}"
        amz_date = request.headers.get("X-Amz-Date", "")
        if match["date"] != amz_date[:8]:
            return "credential scope date does not match X-Amz-Date"
        if match["region"] != self.region or match["service"] != "lambda":
            return f"wrong scope {match['region']}/{match['service']}"
        known = self.credentials.get(match["key"])
        if known is None:
            return f"unknown access key {match['key']}"
        secret, token = known
        if request.headers.get("X-Amz-Security-Token") != token:
            return "security token mismatch"
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        headers = {name: request.headers.get(name, "") for name in signed}
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            headers=headers,
            data=body,
        )
        aws_request.context["timestamp"] = amz_date
        auth = SigV4Auth(ReadOnlyCredentials(match["key"], secret, token), "lambda", self.region)
        canonical = auth.canonical_request(aws_request)
        expected = auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)
        if expected != match["signature"]:
            return "signature mismatch"
        return None

    # -- the API ------------------------------------------------------------------------

    async def _invoke(self, request: web.Request) -> web.Response:
        body = await request.read()
        raw_name = request.raw_path.split("/")[3]
        function = unquote(raw_name)
        qualifier = request.query.get("Qualifier")
        problem = self._verify(request, body)
        self.requests.append(
            SeenRequest(
                function=function,
                qualifier=qualifier,
                raw_path=request.raw_path,
                headers=dict(request.headers),
                body=body,
                signature_ok=problem is None,
                signature_problem=problem,
            )
        )
        self._arrived.set()
        self._arrived = anyio.Event()
        if problem is not None:
            return _error(403, "InvalidSignatureException", f"bad signature: {problem}")
        name = _short_name(function)
        fault = self.faults.get(name)
        if fault is not None and (fault.times is None or fault.times > 0):
            if fault.times is not None:
                fault.times -= 1
            if fault.delay:
                with anyio.move_on_after(fault.delay):
                    await self.release.wait()
            return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        if name not in self.functions:
            return _error(
                404,
                "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:{self.region}:123456789012:function:{name}",
            )
        event = orjson.loads(body)
        return web.Response(
            body=orjson.dumps(event.get("Endpoints", {})),
            headers={"X-Amz-Executed-Version": "$LATEST"},
        )


def _short_name(function: str) -> str:
    """The bare function name of a name, partial ARN or full ARN path parameter."""
    parts = function.split(":")
    if function.startswith("arn:"):
        return parts[6]
    if len(parts) >= 2 and parts[0].isdigit() and len(parts[0]) == 12:
        return parts[2] if parts[1] == "function" else parts[1]
    return parts[0]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"Type": "User", "message": message}),
        headers={"X-Amzn-ErrorType": code, "Content-Type": "application/json"},
    )
