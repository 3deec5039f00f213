"""A local AWS Lambda for hook functions: the Invoke API in front, real runtimes behind.

``dispatcher lambda serve NAME=HANDLER ...`` (see ``command``) or, from Python::

    from dispatcher.lambda_host import FunctionSpec, LambdaHost

    async with LambdaHost([FunctionSpec.parse("credit=config/credit-score.js:handler")]) as host:
        ...  # any Lambda client with endpoint_url=host.endpoint_url

Handlers run in worker processes behind the Lambda Runtime API, under runtime interface
clients (``awslambdaric`` from PyPI for Python; for Node.js a pure-JavaScript client
shipped in this package, ``node_runtime.js``, that follows the official one), so they
see Lambda's event, context, error and timeout semantics. Node.js needs nothing
installed but ``node`` itself.

What the host trusts (see docs/lambda-host.md): the Invoke API answers programs on this
machine, never a web page (``callers``); each worker's Runtime API answers that worker
only (a per-worker secret, ``runtime_api``); a worker's whole process group dies with
the worker and with the host (``worker``, ``_launch``); queued ``Event`` payloads,
request bodies and responses are bounded in bytes (``invoke_api``, ``invocation``).

Modules: ``spec`` (what runs), ``host`` (``LambdaHost``, ``serve``), ``invoke_api``,
``callers``, ``runtime_api``, ``function`` (concurrency, timeouts, worker reuse),
``worker`` and ``_launch`` (processes), ``command`` (the CLI).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dispatcher.lambda_host.spec import (
    DEFAULT_ACCOUNT,
    DEFAULT_CONCURRENCY,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    FunctionSpec,
)

if TYPE_CHECKING:
    from dispatcher.lambda_host.function import FunctionStats
    from dispatcher.lambda_host.host import LambdaHost, serve

# The host needs aiohttp's server; the CLI only needs the command's flags (``command``):
# the host loads on first use, so `dispatcher run` does not pay for it.
_LAZY = {"FunctionStats": "dispatcher.lambda_host.function",
         "LambdaHost": "dispatcher.lambda_host.host", "serve": "dispatcher.lambda_host.host"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispatcher.lambda_host' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "FunctionSpec",
    "FunctionStats",
    "LambdaHost",
    "serve",
]
