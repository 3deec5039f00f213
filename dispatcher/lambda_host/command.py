"""``dispatcher lambda``: serve hook functions locally, manage their invoke policies.

    dispatcher lambda serve [--host 127.0.0.1] [--port 9001]
                            [--timeout [NAME=]SECONDS]... [--concurrency [NAME=]N]...
                            [--region us-east-1] [--account-id 000000000000]
                            [--worker-logs stderr|discard]
                            [--max-queued-event-bytes BYTES]
                            NAME=HANDLER [NAME=HANDLER ...]

``HANDLER`` is ``path/file.js:fn``, ``path/file.mjs:fn``, ``path/file.py:fn`` or
``package.module:fn`` (see ``dispatcher.lambda_host.spec``). ``--timeout`` and
``--concurrency`` without ``NAME=`` set the default of every function (15 s, as long as
Amazon Pinpoint waits for a hook, and 8 workers); with ``NAME=`` they override it for
one function, e.g. ``--timeout 5 --timeout enrich=30 --concurrency score=2``.
``--max-queued-event-bytes`` bounds each function's queue of ``Event`` payloads waiting
for a slot (default 64 MiB; beyond it: 429). The host prints ``Lambda host listening on
http://HOST:PORT (functions: ...)`` once it accepts invocations, and stops on SIGINT or
SIGTERM, leaving no worker process behind. A ``--host`` other than loopback gets a
warning on stderr: the Invoke API has no authentication.

    dispatcher lambda add-permission --policy-file FILE --function-name NAME
                            --statement-id SID --action lambda:InvokeFunction
                            --principal pinpoint.us-east-1.amazonaws.com
                            [--source-account ACCOUNT] [--source-arn ARN]
                            [--region us-east-1] [--account-id 000000000000]

appends a statement to the function's resource-policy file (created if missing) and
prints what ``aws lambda add-permission`` prints: ``{"Statement": "<statement JSON>"}``.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import orjson

from dispatcher.errors import ConfigError
from dispatcher.lambda_host.spec import (
    DEFAULT_ACCOUNT,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_QUEUED_EVENT_BYTES,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    FunctionSpec,
)


def register(subparsers: Any) -> None:
    """Add ``lambda serve`` and ``lambda add-permission`` to a subparsers object."""
    parser = subparsers.add_parser(
        "lambda", help="run hook functions locally behind the Lambda Invoke API",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="lambda_command", required=True)

    serve = sub.add_parser(
        "serve", help="serve NAME=HANDLER functions on the Lambda Invoke API",
        description="Serve hook functions on the AWS Lambda Invoke API "
        "(POST /2015-03-31/functions/NAME/invocations).",
    )
    serve.add_argument("functions", nargs="+", metavar="NAME=HANDLER",
                       help="e.g. credit=config/credit-score.js:handler or "
                       "score=hooks.score:handler")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address (default: 127.0.0.1); the API has no authentication, "
                       "so any other address gets a warning")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    serve.add_argument("--timeout", action="append", default=[], metavar="[NAME=]SECONDS",
                       help=f"function timeout (default: {DEFAULT_TIMEOUT:g}); repeatable")
    serve.add_argument("--concurrency", action="append", default=[], metavar="[NAME=]N",
                       help="concurrent invocations and workers per function "
                       f"(default: {DEFAULT_CONCURRENCY}); repeatable")
    serve.add_argument("--region", default="us-east-1", help="region in ARNs and AWS_REGION")
    serve.add_argument("--account-id", default=DEFAULT_ACCOUNT, help="account id in ARNs")
    serve.add_argument("--worker-logs", choices=("stderr", "discard"), default="stderr",
                       help="where handler output goes (default: stderr)")
    serve.add_argument("--max-queued-event-bytes", type=int,
                       default=DEFAULT_MAX_QUEUED_EVENT_BYTES, metavar="BYTES",
                       help="per function, bytes of Event payloads that may wait for a slot "
                       f"before the host throttles (default: {DEFAULT_MAX_QUEUED_EVENT_BYTES})")
    serve.set_defaults(func=_serve)

    perm = sub.add_parser(
        "add-permission", help="add a statement to a function's resource-policy file",
        description="Append a statement to a Lambda resource-policy file, like "
        "`aws lambda add-permission`.",
    )
    perm.add_argument("--policy-file", required=True, help="policy JSON file (created if missing)")
    perm.add_argument("--function-name", required=True)
    perm.add_argument("--statement-id", required=True)
    perm.add_argument("--action", required=True, help="e.g. lambda:InvokeFunction")
    perm.add_argument("--principal", required=True, help="e.g. pinpoint.us-east-1.amazonaws.com")
    perm.add_argument("--source-account")
    perm.add_argument("--source-arn")
    perm.add_argument("--region", default="us-east-1", help="region of the function's ARN")
    perm.add_argument("--account-id", default=DEFAULT_ACCOUNT,
                      help="account of the function's ARN")
    perm.set_defaults(func=_add_permission)


def _overrides(
    values: list[str], flag: str, convert: type[Any], default: Any
) -> tuple[Any, dict[str, Any]]:
    """Split ``--flag V`` (the default) from ``--flag NAME=V`` (one function)."""
    per_function: dict[str, Any] = {}
    for raw in values:
        name, sep, value = raw.rpartition("=")
        try:
            converted = convert(value)
        except ValueError:
            raise ConfigError(f"{flag} {raw!r}: {value!r} is not a valid value") from None
        if sep:
            per_function[name] = converted
        else:
            default = converted
    return default, per_function


def parse_functions(args: argparse.Namespace) -> list[FunctionSpec]:
    """The FunctionSpecs of ``lambda serve``'s arguments."""
    timeout, timeouts = _overrides(args.timeout, "--timeout", float, DEFAULT_TIMEOUT)
    concurrency, limits = _overrides(args.concurrency, "--concurrency", int, DEFAULT_CONCURRENCY)
    specs = []
    for text in args.functions:
        name = text.partition("=")[0]
        specs.append(FunctionSpec.parse(
            text, timeout=timeouts.get(name, timeout), concurrency=limits.get(name, concurrency)
        ))
    unknown = sorted((set(timeouts) | set(limits)) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"--timeout/--concurrency name an unknown function: {unknown[0]!r}")
    return specs


def _serve(args: argparse.Namespace) -> int:
    from dispatcher.lambda_host.host import serve

    specs = parse_functions(args)
    output = subprocess.DEVNULL if args.worker_logs == "discard" else None
    return serve(specs, host=args.host, port=args.port, region=args.region,
                 account_id=args.account_id, worker_output=output,
                 max_queued_event_bytes=args.max_queued_event_bytes)


def _add_permission(args: argparse.Namespace) -> int:
    from dispatcher.policy_files import add_permission

    result = add_permission(
        Path(args.policy_file),
        function_name=args.function_name,
        statement_id=args.statement_id,
        action=args.action,
        principal=args.principal,
        source_account=args.source_account,
        source_arn=args.source_arn,
        region=args.region,
        account=args.account_id,
    )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


__all__ = ["parse_functions", "register"]
