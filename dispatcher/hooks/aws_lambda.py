"""The AWS Lambda hook transport: one synchronous ``Invoke`` per attempt.

Two interchangeable invoke paths sit behind one error mapping:

``client="lean"`` (default)
    Resolves the endpoint URL (``client.meta.endpoint_url`` of the process-wide
    aiobotocore client, so ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL`` / the
    shared config file / an explicit ``endpoint_url`` all apply) and the credential
    chain (the same aiobotocore session's credentials, refreshed when they expire)
    once, then per call: a precomputed URL and header set, botocore's SigV4 signer with
    the constant parts of the canonical request precomputed (``signing.InvokeSigner``),
    a POST of the raw event bytes on a shared ``aiohttp.ClientSession`` whose
    ``TCPConnector`` is sized to the hook parallelism, and an orjson decode. It costs
    roughly a third of the client CPU of ``client.invoke`` (see
    ``benchmarks/bench_lambda.py``).

``client="botocore"``
    Stock ``aiobotocore`` ``lambda.invoke``: the fallback when something only the full
    SDK stack does is needed (e.g. an endpoint that only the endpoint ruleset, not
    ``endpoint_url``, describes), and the reference the lean path is tested against.

Errors (both paths):

==========================================  ==========================================
Lambda's answer                             raised
==========================================  ==========================================
200 + ``X-Amz-Function-Error`` (Handled /   ``HookAttemptError`` retryable, reason has
Unhandled)                                  the function's errorType: errorMessage
200, body not JSON                          ``HookResultError``
429 ``TooManyRequestsException``            ``HookAttemptError`` retryable, retry_after
                                            from ``Retry-After``
408, 5xx                                    ``HookAttemptError`` retryable
404 and every other 4xx                     ``HookAttemptError(retryable=False)``,
                                            reason ``Code: message``
connection refused/reset, time-out          ``HookAttemptError`` retryable
event over 6291456 bytes                    ``HookAttemptError(retryable=False)``,
                                            nothing is sent
==========================================  ==========================================

A function in another region than the project is a ``ConfigError`` when the transport
is built, before any invocation: Amazon Pinpoint requires "the Lambda function must also
be in the same region as the Amazon Pinpoint project".
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import anyio
import yarl
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from dispatcher.aws import AwsClients
from dispatcher.aws.errors import retry_after as parse_retry_after
from dispatcher.aws.signing import BotocoreSigner, InvokeSigner
from dispatcher.errors import ConfigError, HookAttemptError, HookResultError
from dispatcher.hooks.base import MAX_RESPONSE, MAX_SYNC_PAYLOAD, read_capped
from dispatcher.hooks.lambda_errors import (
    clip,
    connection_error,
    decode_result,
    error_code_and_message,
    function_failed,
    status_error,
    too_large,
)
from dispatcher.hooks.lambda_lean import (
    FrozenCredentials,
    LeanClient,
    invoke_url,
    proxy_for,
    user_agent,
)
from dispatcher.hooks.lambda_names import (
    LambdaFunctionRef,
    parse_function_name,
)
from dispatcher.net import is_loopback

__all__ = ["LambdaFunctionRef", "LambdaTransport", "parse_function_name"]

ClientKind = Literal["lean", "botocore"]

# ---------------------------------------------------------------------------------------
# The transport
# ---------------------------------------------------------------------------------------


class LambdaTransport:
    """Invokes one Lambda function synchronously (``RequestResponse``), one attempt a call.

    ``function`` is a name, partial or full ARN (with an optional ``:qualifier``), or a
    ``LambdaFunctionRef`` from ``parse_function_name``; a string is validated here, so a
    cross-region ARN fails at construction. ``region`` is the project region (the
    signing and endpoint region; taken from the ref when omitted). ``concurrency`` sizes
    the lean path's connection pool to the hook concurrency. ``clients`` is the
    process-wide ``AwsClients`` that endpoint, credentials and the botocore client come
    from (one is created, sized to ``concurrency`` and closed by ``aclose``, when
    omitted). ``client`` selects the invoke path, ``"lean"`` or ``"botocore"``;
    ``signer`` the lean path's SigV4 implementation (``"fast"``, or ``"botocore"`` for
    measurement). ``connect_timeout`` / ``read_timeout`` are backstops: the invoke
    policy's cancel scope is the real per-attempt deadline.

    Cancellation-safe: the invoke policy's cancel scope may interrupt a call at any
    point; an interrupted response's connection is closed, never returned to the pool.
    """

    def __init__(
        self,
        function: str | LambdaFunctionRef,
        *,
        region: str | None = None,
        concurrency: int = 64,
        endpoint_url: str | None = None,
        client: str = "lean",
        clients: AwsClients | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float | None = 60.0,
        name: str | None = None,
        signer: str = "fast",
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"'concurrency' must be >= 1, got {concurrency}")
        if client not in ("lean", "botocore"):
            raise ConfigError(f"'client' must be 'lean' or 'botocore', got {client!r}")
        if signer not in ("fast", "botocore"):
            raise ConfigError(f"'signer' must be 'fast' or 'botocore', got {signer!r}")
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"endpoint_url {endpoint_url!r} is not an http(s) URL")
        if isinstance(function, LambdaFunctionRef):
            self.ref = function
            region = region or function.region
        elif region is None:
            raise ConfigError(f"Lambda function {function!r}: the project region is required")
        else:
            self.ref = parse_function_name(function, region)
        if self.ref.region != region:
            raise ConfigError(
                f"Lambda function {self.ref.function_name!r} is in region {self.ref.region}, "
                f"but the project is in region {region}"
            )
        self.name = name or str(self.ref)
        self.region = region
        self.concurrency = concurrency
        self.endpoint_url = endpoint_url
        self.client_kind: ClientKind = "lean" if client == "lean" else "botocore"
        self._signer_kind = signer
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._owns_aws = clients is None
        self._aws = clients or AwsClients(
            region,
            max_pool_connections=concurrency,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout if read_timeout is not None else 900.0,
        )
        self._lean: LeanClient | None = None
        self._botocore: Any = None
        self._open_lock = anyio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"LambdaTransport({self.name!r}, region={self.region!r}, "
            f"client={self.client_kind!r}, concurrency={self.concurrency})"
        )

    @property
    def invoke_url(self) -> str | None:
        """The lean path's resolved Invoke URL (None until opened, or on the botocore path)."""
        return str(self._lean.url) if self._lean is not None else None

    async def __aenter__(self) -> LambdaTransport:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- set-up -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create the client and resolve endpoint and credentials (else done lazily)."""
        if self.client_kind == "lean":
            await self._lean_client()
        else:
            await self._botocore_client()

    async def _botocore_client(self) -> Any:
        if self._botocore is None:
            self._check_open()
            self._botocore = await self._aws.client(
                "lambda", endpoint_url=self.endpoint_url, region=self.region
            )
        return self._botocore

    async def _lean_client(self) -> LeanClient:
        lean = self._lean
        if lean is not None:
            return lean
        async with self._open_lock:
            if self._lean is None:
                self._lean = await self._build_lean_client()
            return self._lean

    async def _build_lean_client(self) -> LeanClient:
        self._check_open()
        botocore_client = await self._botocore_client()
        endpoint = str(botocore_client.meta.endpoint_url)
        source = await self._aws.session.get_credentials()
        if source is None and is_loopback(urlsplit(endpoint).hostname or ""):
            # A local Lambda (``dispatcher lambda serve``) checks no signature: don't make
            # a developer invent credentials for it.
            from aiobotocore.credentials import AioCredentials

            source = AioCredentials("local", "local", method="loopback")
        if source is None:
            raise ConfigError(
                "no AWS credentials found for the Lambda hook (looked in the standard "
                "credential chain: environment, shared credentials/config files, SSO, "
                "container and instance roles)"
            )
        url = invoke_url(endpoint, self.ref)
        signer_cls = InvokeSigner if self._signer_kind == "fast" else BotocoreSigner
        signer = signer_cls(
            url,
            region=self.region,
            static_headers={"X-Amz-Invocation-Type": "RequestResponse"},
            unsigned_headers={"User-Agent": user_agent(), "Accept-Encoding": "identity"},
        )
        session = self._aws.http_session(url, limit=self.concurrency,
                                         connect_timeout=self._connect_timeout,
                                         read_timeout=self._read_timeout)  # fmt: skip
        return LeanClient(
            session=session,
            url=yarl.URL(url, encoded=True),
            proxy=proxy_for(url),
            signer=signer,
            credentials=FrozenCredentials(source),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    async def aclose(self) -> None:
        """Close the HTTP session (and the AWS clients, if this transport created them)."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            lean, self._lean = self._lean, None
            if lean is not None:
                await lean.session.close()
            self._botocore = None
            if self._owns_aws:
                await self._aws.aclose()

    # -- one attempt --------------------------------------------------------------------

    async def invoke(self, event: bytes) -> Any:
        """One synchronous invocation of the function with ``event``; its decoded result."""
        if len(event) > MAX_SYNC_PAYLOAD:
            raise too_large(self.name, len(event))
        if self.client_kind == "lean":
            return await self._invoke_lean(event)
        return await self._invoke_botocore(event)

    async def _invoke_lean(self, event: bytes) -> Any:
        lean = self._lean or await self._lean_client()
        try:
            credentials = await lean.credentials.get()
        except (BotoCoreError, RuntimeError) as exc:
            raise HookAttemptError(
                clip(f"cannot refresh AWS credentials: {exc}"), retryable=True, function=self.name
            ) from exc
        headers = lean.signer.sign(credentials, event)
        try:
            async with lean.session.post(
                lean.url, data=event, headers=headers, allow_redirects=False, proxy=lean.proxy
            ) as response:
                body = await read_capped(response, self.name)
                status = response.status
                function_error = response.headers.get("X-Amz-Function-Error")
                error_type = response.headers.get("X-Amzn-ErrorType")
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(self.name, exc) from exc
        if status == 200:
            if function_error:
                raise function_failed(self.name, function_error, body)
            return decode_result(self.name, body)
        if 200 <= status < 400:
            raise HookAttemptError(
                f"unexpected HTTP {status} from Invoke (expected 200 for RequestResponse)",
                retryable=False,
                function=self.name,
            )
        code, message = error_code_and_message(error_type, body)
        raise status_error(self.name, status, code, message, parse_retry_after(retry_after))

    async def _invoke_botocore(self, event: bytes) -> Any:
        client = self._botocore or await self._botocore_client()
        kwargs: dict[str, Any] = {
            "FunctionName": self.ref.invoke_name,
            "InvocationType": "RequestResponse",
            "Payload": event,
        }
        if self.ref.qualifier:
            kwargs["Qualifier"] = self.ref.qualifier
        try:
            response = await client.invoke(**kwargs)
            async with response["Payload"] as stream:
                body = await stream.read(MAX_RESPONSE + 1)
            if len(body) > MAX_RESPONSE:
                raise HookResultError(
                    f"the hook's answer is over the {MAX_RESPONSE}-byte limit; not read",
                    function=self.name,
                )
        except ClientError as exc:
            meta = exc.response.get("ResponseMetadata", {})
            error = exc.response.get("Error", {})
            status = int(meta.get("HTTPStatusCode") or 0)
            message = error.get("Message") or None
            reason = exc.response.get("Reason")
            if isinstance(reason, str) and reason:
                message = f"{message} ({reason})" if message else reason
            raise status_error(
                self.name,
                status,
                error.get("Code") or None,
                message,
                parse_retry_after(meta.get("HTTPHeaders", {}).get("retry-after")),
            ) from exc
        except (
            BotocoreConnectionError,
            HTTPClientError,
            aiohttp.ClientError,
            TimeoutError,
            OSError,
        ) as exc:
            raise connection_error(self.name, exc) from exc
        except CredentialRetrievalError as exc:
            raise HookAttemptError(
                clip(f"cannot refresh AWS credentials: {exc}"), retryable=True, function=self.name
            ) from exc
        except BotoCoreError as exc:  # no credentials, parameter validation, ...
            raise HookAttemptError(
                clip(f"{type(exc).__name__}: {exc}"), retryable=False, function=self.name
            ) from exc
        status = int(response.get("StatusCode") or 0)
        if status != 200:
            raise HookAttemptError(
                f"unexpected HTTP {status} from Invoke (expected 200 for RequestResponse)",
                retryable=False,
                function=self.name,
            )
        function_error = response.get("FunctionError")
        if function_error:
            raise function_failed(self.name, function_error, body)
        return decode_result(self.name, body)
