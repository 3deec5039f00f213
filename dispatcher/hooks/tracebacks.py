"""A failed hook's traceback, logged at debug level once per distinct error.

The outcome log keeps a one-line ``Reason`` per endpoint; the traceback behind it goes
to the ``dispatcher.hooks`` logger at DEBUG (``dispatcher run --log-level debug``), once
per distinct error of a function in a run: the same exception type and message are not
logged again, so a hook that fails every chunk the same way logs one traceback, not
thousands.

Where the traceback comes from depends on where the function ran:

- in process: the handler's own exception (``PythonTransport`` chains it as the cause);
- AWS Lambda or the local Lambda host: the ``stackTrace`` of the function error payload
  (``errorType``, ``errorMessage``, ``stackTrace``), carried as a ``RemoteTraceback``;
- a webhook: the body of its error answer (the first KiB), also as a ``RemoteTraceback``.

An error with neither (a time-out, a 429) is logged as its reason alone.
"""

from __future__ import annotations

import logging
import traceback
import weakref
from typing import Any

from dispatcher.errors import HookError

log = logging.getLogger("dispatcher.hooks")

MAX_DISTINCT = 50
"""Distinct errors logged per function and run; past it, one line says the rest are not."""


class RemoteTraceback(Exception):
    """The text of a traceback (or error body) that came back from a remote function.

    Chained as the ``__cause__`` of the ``HookAttemptError`` that reports it, as
    ``concurrent.futures`` chains a worker process's traceback."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return self.text


def remote_traceback(doc: Any) -> RemoteTraceback | None:
    """A Lambda function-error payload's ``stackTrace`` (a list of frames, Python's or
    Node.js's, or one string), as one text; None if it has none."""
    if not isinstance(doc, dict):
        return None
    trace = doc.get("stackTrace")
    if isinstance(trace, list):
        frames = [str(f).rstrip("\n") for f in trace]
    elif isinstance(trace, str):
        frames = [trace.rstrip("\n")]
    else:
        return None
    if not frames:
        return None
    head = f"{doc.get('errorType', 'Error')}: {doc.get('errorMessage', '')}"
    if frames[0].startswith(head.split(":", 1)[0]):
        head = frames.pop(0)  # Node.js's stack starts with the error's own line
    return RemoteTraceback("\n".join([head, *frames]))


# Per transport (one per function and run), so a new run logs its errors afresh.
_seen: weakref.WeakKeyDictionary[object, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


def _root(exc: BaseException) -> BaseException:
    """The first cause in ``exc``'s chain: the user's exception or the remote text."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def log_hook_failure(transport: object, function: str, exc: HookError) -> None:
    """Log ``exc``'s traceback at DEBUG, unless this transport already logged its like."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    root = _root(exc)
    key = (type(root).__name__, str(root))
    seen = _seen.setdefault(transport, set())
    if key in seen:
        return
    seen.add(key)
    if len(seen) > MAX_DISTINCT:
        if len(seen) == MAX_DISTINCT + 1:
            log.debug("hook %s: more than %d distinct errors; no more are logged",
                      function, MAX_DISTINCT)  # fmt: skip
        return
    if isinstance(root, RemoteTraceback):
        detail = root.text
    elif isinstance(root, HookError):
        detail = ""  # our own error (a time-out, an HTTP status): the reason says it all
    else:
        detail = "".join(traceback.format_exception(root)).rstrip("\n")
    if detail:
        log.debug("hook %s failed: %s\n%s", function, exc.reason, detail)
    else:
        log.debug("hook %s failed: %s", function, exc.reason)
