"""Lambda's answers as the invoke policy's errors, the same for the lean and botocore
paths (the table is in ``dispatcher.hooks.aws_lambda``'s docstring)."""

from __future__ import annotations

from typing import Any

import orjson

from dispatcher.errors import HookAttemptError, HookResultError
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD
from dispatcher.hooks.tracebacks import remote_traceback

_REASON_LIMIT = 500


def clip(text: str, limit: int = _REASON_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def status_error(
    function: str, status: int, code: str | None, message: str | None, retry_after: float | None
) -> HookAttemptError:
    """Map a non-200 Invoke answer: 429, 408 and 5xx may pass; other 4xx will not."""
    label = code or f"HTTP {status}"
    reason = f"{label}: {message}" if message else label
    retryable = status in (408, 429) or status >= 500
    return HookAttemptError(
        clip(reason),
        retryable=retryable,
        retry_after=retry_after if retryable else None,
        function=function,
        throttled=status == 429,
    )


def error_code_and_message(
    error_type_header: str | None, body: bytes
) -> tuple[str | None, str | None]:
    """The error code and message of a rest-json error, as botocore's parser reads them."""
    code = error_type_header.split(":", 1)[0] if error_type_header else None
    message: str | None = None
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        if code is None:
            raw = doc.get("__type") or doc.get("code")
            if isinstance(raw, str):
                code = raw.rsplit("#", 1)[-1].split(":", 1)[0]
        raw_message = doc.get("message") or doc.get("Message") or doc.get("errorMessage")
        if isinstance(raw_message, str):
            message = raw_message
        reason = doc.get("Reason")
        if isinstance(reason, str) and reason:
            message = f"{message} ({reason})" if message else reason
    elif body:
        message = body[:200].decode("utf-8", "replace")
    return code, message


def function_failed(function: str, kind: str, body: bytes) -> HookAttemptError:
    """The function itself failed (HTTP 200 + ``X-Amz-Function-Error``)."""
    detail: str
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and ("errorType" in doc or "errorMessage" in doc):
        detail = f"{doc.get('errorType', 'Error')}: {doc.get('errorMessage', '')}"
    elif body:
        detail = body[:300].decode("utf-8", "replace")
    else:
        detail = "(no error payload)"
    error = HookAttemptError(
        clip(f"function error ({kind}): {detail}"), retryable=True, function=function
    )
    error.__cause__ = remote_traceback(doc)  # logged at debug level, once per distinct error
    return error


def decode_result(function: str, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HookResultError(
            clip(f"the function's return value is not JSON ({exc}); first bytes: {body[:80]!r}"),
            function=function,
        ) from exc


def too_large(function: str, size: int) -> HookAttemptError:
    return HookAttemptError(
        f"event is {size} bytes, over Lambda's synchronous invocation payload limit of "
        f"{MAX_SYNC_PAYLOAD} bytes (6 MiB); it was not sent",
        retryable=False,
        function=function,
    )


def connection_error(function: str, exc: BaseException) -> HookAttemptError:
    text = str(exc) or type(exc).__name__
    return HookAttemptError(
        clip(f"connection error: {type(exc).__name__}: {text}"),
        retryable=True,
        function=function,
    )
