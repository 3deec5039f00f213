"""The AWS boundary: clients, how their failures are classified, the retry policy for
calls that are safe to repeat, and partitions and ARNs from botocore's own data.

Everything that talks to AWS goes through here, so a throttling code, a ``Retry-After``
or a partition is understood the same way everywhere. Calls that are *not* safe to
repeat (a hook invocation, a message send) keep their own explicit rules: the invoke
policy (``dispatcher.hooks.invoke``) and the send stage (``dispatcher.delivery``); they
use ``classify`` to read a failure, never ``call`` to retry it.

Only ``AwsClients`` is imported eagerly: the rest pulls in botocore, which a run that
touches no AWS service never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispatcher.aws.clients import AwsClients

if TYPE_CHECKING:
    from dispatcher.aws.errors import AwsFault, classify, retry_after
    from dispatcher.aws.partitions import partition_for_region
    from dispatcher.aws.retry import call

__all__ = ["AwsClients", "AwsFault", "call", "classify", "partition_for_region", "retry_after"]

_LAZY = {"AwsFault": "errors", "classify": "errors", "retry_after": "errors",
         "partition_for_region": "partitions", "call": "retry"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"dispatcher.aws.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dispatcher.aws' has no attribute {name!r}")
