"""The lean invoke path's parts: the Invoke URL as botocore encodes it, the proxy decision,
credentials read at most once a second, and the per-transport client bundle."""

from __future__ import annotations

import platform
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import botocore
import yarl
from botocore.credentials import ReadOnlyCredentials

from dispatcher.aws.signing import RequestSigner
from dispatcher.hooks.lambda_names import LambdaFunctionRef
from dispatcher.net import is_loopback


def user_agent() -> str:
    try:
        version = metadata.version("segment-dispatcher")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = "0"
    return (
        f"segment-dispatcher/{version} botocore/{botocore.__version__} "
        f"aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"
    )


def invoke_url(endpoint_url: str, ref: LambdaFunctionRef) -> str:
    """The Invoke URL, encoded exactly as botocore's rest-json serializer encodes it."""
    url = (
        f"{endpoint_url.rstrip('/')}/2015-03-31/functions/"
        f"{quote(ref.invoke_name, safe='')}/invocations"
    )
    if ref.qualifier:
        url += f"?Qualifier={quote(ref.qualifier, safe='-_.~')}"
    return url


def proxy_for(url: str) -> str | None:
    """The ``HTTP(S)_PROXY`` that applies to ``url`` (``NO_PROXY`` honoured), read once.

    A loopback endpoint (the local Lambda host) is never reached through a proxy: the
    events it gets carry endpoint data that must not leave the machine.
    """
    parts = urlsplit(url)
    if is_loopback(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class FrozenCredentials:
    """The session's credentials as a frozen snapshot, re-read at most once a second.

    ``get_frozen_credentials`` of refreshable credentials refreshes them (under their
    own lock) shortly before they expire; asking once a second is enough to follow.
    """

    _RECHECK = 1.0

    def __init__(self, source: Any) -> None:
        self._source = source
        self._frozen: ReadOnlyCredentials | None = None
        self._checked = 0.0

    async def get(self) -> ReadOnlyCredentials:
        now = time.monotonic()
        frozen = self._frozen
        if frozen is None or now - self._checked >= self._RECHECK:
            frozen = await self._source.get_frozen_credentials()
            self._frozen = frozen
            self._checked = now
        return frozen


@dataclass(slots=True)
class LeanClient:
    session: aiohttp.ClientSession
    url: yarl.URL
    proxy: str | None
    signer: RequestSigner
    credentials: FrozenCredentials
