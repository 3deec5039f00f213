"""The lean request path of the AWS senders: one JSON operation as a SigV4-signed
aiohttp POST, failing with the exceptions botocore would raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import anyio
import orjson
import yarl
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

if TYPE_CHECKING:
    from dispatcher.aws import AwsClients


class LeanCall:
    """One AWS JSON operation (SES v2 ``SendEmail``, SMS v2 ``SendTextMessage``) sent as
    a SigV4-signed aiohttp POST, without botocore's per-call machinery.

    A stock aiobotocore call costs ~3-4x a plain POST in client CPU: parameter
    validation, serialization through the service model, an event-hook chain, a fresh
    ``AWSRequest`` and a full SigV4 derivation, response parsing through the model. Here
    the endpoint, the signing name and region come from the stock client once
    (``AWS_ENDPOINT_URL_*``, config files and ``endpoint_url`` honoured as before); the
    request is the operation's JSON body (these operations have no blobs or timestamps:
    the parameters *are* the wire body); signing is ``dispatcher.aws.signing``'s
    precomputed ``InvokeSigner``. Failures are raised as botocore's own exception types,
    mapped as aiobotocore maps them, so ``failure_result`` classifies them unchanged.
    """

    def __init__(
        self, clients: AwsClients, service: str, operation: str, *, path: str = "/",
        headers: Mapping[str, str], endpoint_url: str | None, region: str | None,
        concurrency: int,
    ) -> None:  # fmt: skip
        self._clients = clients
        self._service = service
        self._operation = operation
        self._path = path
        self._headers = dict(headers)
        self._endpoint_url = endpoint_url
        self._region = region
        self._concurrency = concurrency
        self._open: _LeanOpen | None = None
        self._lock = anyio.Lock()

    async def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded answer; a botocore exception (or ``OSError``) on failure."""
        lean = self._open or await self.open()
        body = orjson.dumps(params)
        source = lean.credentials
        if source is None:
            raise NoCredentialsError()
        headers = lean.signer.sign(await source.get(), body)
        try:
            async with lean.session.post(lean.url, data=body, headers=headers,
                                         allow_redirects=False, proxy=lean.proxy) as response:
                raw = await response.read()
                status = response.status
                if status >= 300:
                    return _raise_client_error(status, response.headers, raw, self._operation)
        except aiohttp.ClientError as exc:
            raise _transport_error(exc, lean.url_text) from exc
        except TimeoutError as exc:  # sock_read: the request left, no answer in time
            raise ReadTimeoutError(endpoint_url=lean.url_text, error=exc) from exc
        try:
            answer = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            answer = {}  # accepted (2xx); only the id is missing
        return answer if isinstance(answer, dict) else {}

    async def open(self) -> _LeanOpen:
        """Resolve the endpoint and credentials, make the session (once)."""
        async with self._lock:
            if self._open is None:
                self._open = await self._build()
            return self._open

    async def _build(self) -> _LeanOpen:
        from dispatcher.aws.signing import InvokeSigner
        from dispatcher.hooks.lambda_lean import FrozenCredentials, proxy_for, user_agent

        stock = await self._clients.client(self._service, endpoint_url=self._endpoint_url,
                                           region=self._region)  # fmt: skip
        url = str(stock.meta.endpoint_url).rstrip("/") + self._path
        signer = InvokeSigner(
            url, region=stock.meta.region_name, service=stock.meta.service_model.signing_name,
            static_headers=self._headers, unsigned_headers={"User-Agent": user_agent()},
        )  # fmt: skip
        source = await self._clients.session.get_credentials()
        options = self._clients.config_options
        session = self._clients.http_session(url, limit=self._concurrency,
                                             connect_timeout=options["connect_timeout"],
                                             read_timeout=options["read_timeout"])  # fmt: skip
        self._clients.close_with(session.close)
        return _LeanOpen(
            session=session, url=yarl.URL(url, encoded=True), url_text=url,
            proxy=proxy_for(url), signer=signer,
            credentials=None if source is None else FrozenCredentials(source),
        )  # fmt: skip


@dataclass(slots=True)
class _LeanOpen:
    session: aiohttp.ClientSession
    url: yarl.URL
    url_text: str
    proxy: str | None
    signer: Any
    credentials: Any


def _raise_client_error(
    status: int, headers: Mapping[str, str], raw: bytes, operation: str
) -> NoReturn:
    """An error answer as the ``ClientError`` botocore would raise (rest-json and JSON
    1.0: the code from ``X-Amzn-ErrorType`` or ``__type``, modeled fields such as SMS's
    ``Reason`` at the top level of the response)."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(headers.get("X-Amzn-ErrorType") or body.get("__type") or body.get("code")
               or body.get("Code") or status)  # fmt: skip
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(body.get("message") or body.get("Message") or "")
    response: dict[str, Any] = {
        k: v for k, v in body.items() if k not in ("__type", "code", "Code", "message", "Message")
    }
    response["Error"] = {"Code": code, "Message": message}
    response["ResponseMetadata"] = {
        "HTTPStatusCode": status, "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
    }  # fmt: skip
    raise ClientError(response, operation)


def _transport_error(exc: aiohttp.ClientError, url: str) -> Exception:
    """aiohttp's error as the botocore exception aiobotocore raises for it."""
    error: Exception  # botocore's exception types are untyped
    if isinstance(exc, aiohttp.ClientSSLError):
        error = SSLError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        error = ProxyConnectionError(proxy_url=url, error=exc)
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        error = ConnectionClosedError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        connecting = str(exc).lower().startswith("connect")
        timeout = ConnectTimeoutError if connecting else ReadTimeoutError
        error = timeout(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientConnectionError):
        error = EndpointConnectionError(endpoint_url=url, error=exc)
    else:
        error = HTTPClientError(error=exc)
    return error
