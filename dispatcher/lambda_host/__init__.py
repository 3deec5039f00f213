"""A local AWS Lambda for hook functions: the Invoke API in front, real runtimes behind.

``dispatcher lambda serve NAME=HANDLER ...`` (see ``command``) or, from Python::

    from dispatcher.lambda_host import FunctionSpec, LambdaHost

    async with LambdaHost([FunctionSpec.parse("credit=config/credit-score.js:handler")]) as host:
        ...  # any Lambda client with endpoint_url=host.endpoint_url

Handlers run in worker processes behind the Lambda Runtime API, under the official
runtime interface clients (``awslambdaric`` for Python, ``aws-lambda-ric`` for Node.js),
so they see Lambda's event, context, error and timeout semantics. Install the Node.js
client with ``npm ci --prefix dispatcher/lambda_host``.

Modules: ``spec`` (what runs), ``host`` (``LambdaHost``, ``serve``), ``invoke_api``,
``runtime_api``, ``function`` (concurrency, timeouts, worker reuse), ``worker``
(processes), ``command`` (the CLI).
"""

from dispatcher.lambda_host.function import FunctionStats
from dispatcher.lambda_host.host import DEFAULT_ACCOUNT, DEFAULT_PORT, LambdaHost, serve
from dispatcher.lambda_host.spec import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, FunctionSpec

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
