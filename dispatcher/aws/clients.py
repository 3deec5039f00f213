"""One aiobotocore session and one client per (service, endpoint) for the whole process.

Clients are created lazily, sized to the run's parallelism, with botocore's own
retries switched off: the dispatcher's invoke policy and send stage own every retry,
so attempt counts are exact. Endpoints follow the standard AWS configuration
(``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_<SERVICE>``, the shared config file); an
explicit ``endpoint_url`` overrides them for one function or channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import aiohttp
    from aiobotocore.session import AioSession


def _proxied_loopback(endpoint_url: str) -> bool:
    """Whether a loopback endpoint would go through a proxy of the environment."""
    import urllib.request
    from urllib.parse import urlsplit

    from dispatcher.net import is_loopback

    scheme = urlsplit(endpoint_url).scheme
    host = urlsplit(endpoint_url).hostname or ""
    return is_loopback(host) and bool(urllib.request.getproxies().get(scheme))


_LOADERS: dict[str, Any] = {}


def _shared_loader(session: AioSession) -> Any:
    """botocore's data loader for this session's ``data_path``, one per process.

    A new session parses botocore's JSON again: the endpoint rules (``endpoints.json``
    is ~1 MB), each service model and ruleset, ~0.25 s of CPU per client. A loader
    caches what it parsed, so sessions that share one parse each file once per process,
    not once per ``dispatch()`` call of a batch job or per test. botocore shares loaded
    models between the clients of one session in the same way.
    """
    from botocore.loaders import create_loader

    path = session.get_config_variable("data_path") or ""
    loader = _LOADERS.get(path)
    if loader is None:
        loader = _LOADERS[path] = create_loader(path or None)
    return loader


class AwsClients:
    """Creates and caches aiobotocore clients; close it once at the end of the run."""

    def __init__(
        self,
        region: str,
        *,
        max_pool_connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.region = region
        self.config_options: dict[str, Any] = {
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "max_pool_connections": max_pool_connections,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }
        self._session: AioSession | None = None
        self._clients: dict[tuple[str, str | None, str], Any] = {}
        self._stack = AsyncExitStack()
        self._lock = anyio.Lock()

    @property
    def session(self) -> AioSession:
        if self._session is None:
            # Imported on first use: runs that touch no AWS service skip ~0.3 s of imports.
            from aiobotocore.session import get_session

            self._session = get_session()
            self._session.register_component("data_loader", _shared_loader(self._session))
        return self._session

    async def client(
        self, service: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> Any:
        """Return the process-wide client for ``service`` (created on first use)."""
        key = (service, endpoint_url, region or self.region)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = await self._create(service, key[2], endpoint_url, {})
                if _proxied_loopback(client.meta.endpoint_url):
                    # A local endpoint is never reached through HTTP(S)_PROXY (botocore
                    # would, without NO_PROXY): endpoint data must not leave the machine.
                    client = await self._create(service, key[2], endpoint_url, {"proxies": {}})
                self._clients[key] = client
        return client

    async def _create(
        self, service: str, region: str, endpoint_url: str | None, extra: dict[str, Any]
    ) -> Any:
        from aiobotocore.config import AioConfig

        creator = self.session.create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=AioConfig(**self.config_options, **extra),
        )
        return await self._stack.enter_async_context(creator)

    def http_session(
        self, url: str, *, limit: int, connect_timeout: float, read_timeout: float | None
    ) -> aiohttp.ClientSession:
        """An aiohttp session for signed requests to ``url`` (the lean paths: hook
        invokes, sends), trusting what botocore trusts: the configured ``ca_bundle``,
        else botocore's own certificates. Proxies are resolved by the caller, once."""
        import ssl

        import aiohttp

        ssl_context: ssl.SSLContext | bool = True
        if url.startswith("https:"):
            ca_bundle = self.session.get_config_variable("ca_bundle")
            if not ca_bundle:
                from botocore.httpsession import get_cert_path

                ca_bundle = get_cert_path(True)
            ssl_context = ssl.create_default_context(cafile=ca_bundle)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0, ssl=ssl_context,
                                           ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                          sock_read=read_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Content-Type",),  # the signed one is sent, or none
            trust_env=False,  # proxies resolved once by the caller, not per request
        )  # fmt: skip

    def close_with(self, close: Callable[[], Awaitable[object]]) -> None:
        """Call ``close`` when these clients close (e.g. a sender's lean HTTP session)."""
        self._stack.push_async_callback(close)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        self._clients.clear()
