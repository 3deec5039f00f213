"""What the host runs: one ``FunctionSpec`` per function, parsed from ``NAME=HANDLER``.

``HANDLER`` says where the code is and which runtime interface client runs it:

=============================  ========  ==============================================
HANDLER                        runtime   what the worker runs
=============================  ========  ==============================================
``path/to/file.js:handler``    node      ``node_runtime.js`` with task root ``path/to``
``path/to/file.mjs:handler``   node      and Lambda handler string ``file.handler``
``path/to/file.cjs:handler``   node      (a nested export ``file.obj.fn`` also works)
``path/to/file.py:handler``    python    ``awslambdaric`` with task root ``path/to``,
                                         handler ``file.handler``
``package.module:handler``     python    ``awslambdaric`` with the current directory as
                                         task root, handler ``package.module.handler``
=============================  ========  ==============================================

The module part of a file name may not contain a dot: Lambda's handler string
``module.function`` could not express it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dispatcher.errors import ConfigError

Runtime = Literal["node", "python"]

DEFAULT_TIMEOUT = 15.0
"""Per-function timeout in seconds: Amazon Pinpoint waits at most 15 s for a hook."""

DEFAULT_CONCURRENCY = 8
"""Per-function concurrency limit (reserved concurrency): workers and in-flight invokes."""

MAX_TIMEOUT = 900.0
"""Lambda's maximum function timeout."""

DEFAULT_MEMORY_MB = 128

DEFAULT_PORT = 9001
"""The host's Invoke API port."""

DEFAULT_ACCOUNT = "000000000000"
"""The account id in the host's function ARNs."""

DEFAULT_MAX_QUEUED_EVENT_BYTES = 64 * 1024 * 1024
"""Bytes of ``Event`` payloads waiting for a slot, per function, before the host throttles."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_NODE_SUFFIXES = (".js", ".mjs", ".cjs")


@dataclass(frozen=True)
class FunctionSpec:
    """One function served by the host.

    ``task_root`` is the worker's working directory and ``LAMBDA_TASK_ROOT``;
    ``handler`` is Lambda's handler string (``module.function``) relative to it.
    ``timeout`` (seconds) and ``concurrency`` are this function's limits;
    ``environment`` is added to the worker's environment (which otherwise inherits
    the host's, plus Lambda's own variables).
    """

    name: str
    runtime: Runtime
    task_root: Path
    handler: str
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"function name {self.name!r} must be 1-64 letters, digits, '-' or '_'"
            )
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigError(
                f"timeout of function {self.name!r} must be > 0 and <= {MAX_TIMEOUT:g} s, "
                f"got {self.timeout:g}"
            )
        if self.concurrency < 1:
            raise ConfigError(
                f"concurrency of function {self.name!r} must be >= 1, got {self.concurrency}"
            )

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        cwd: Path | None = None,
    ) -> FunctionSpec:
        """Parse ``NAME=HANDLER`` (see the module docstring); ConfigError if malformed."""
        name, sep, handler = text.partition("=")
        if not sep or not name or not handler:
            raise ConfigError(f"expected NAME=HANDLER, got {text!r}")
        return cls.from_handler(
            name, handler, timeout=timeout, concurrency=concurrency, cwd=cwd
        )

    @classmethod
    def from_handler(
        cls,
        name: str,
        handler: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        environment: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> FunctionSpec:
        """Build a spec from ``HANDLER`` (``file.js:fn``, ``file.py:fn``, ``pkg.mod:fn``)."""
        where, sep, attr = handler.rpartition(":")
        if not sep or not where or not attr:
            raise ConfigError(
                f"handler {handler!r} of function {name!r} must be FILE:FUNCTION or "
                "package.module:FUNCTION"
            )
        base = cwd if cwd is not None else Path.cwd()
        runtime: Runtime
        if where.endswith(_NODE_SUFFIXES) or where.endswith(".py"):
            path = (base / where).resolve()
            if not path.is_file():
                raise ConfigError(f"handler file {where!r} of function {name!r} does not exist")
            module = path.name.rsplit(".", 1)[0]
            runtime = "python" if path.suffix == ".py" else "node"
            if "." in module or not module:
                raise ConfigError(
                    f"handler file {path.name!r} of function {name!r}: the module name may "
                    "not contain '.' (Lambda's handler string is module.function)"
                )
            task_root = path.parent
        else:
            module = where
            runtime = "python"
            task_root = base.resolve()
            if not all(_IDENT.match(part) and "$" not in part for part in module.split(".")):
                raise ConfigError(
                    f"handler {handler!r} of function {name!r}: {module!r} is neither a .js, "
                    ".mjs, .cjs or .py file nor a Python module path"
                )
        parts = attr.split(".")
        if not all(_IDENT.match(p) for p in parts) or (runtime == "python" and len(parts) > 1):
            raise ConfigError(
                f"handler {handler!r} of function {name!r}: {attr!r} is not a function name"
            )
        return cls(
            name=name,
            runtime=runtime,
            task_root=task_root,
            handler=f"{module}.{attr}",
            timeout=timeout,
            concurrency=concurrency,
            environment=dict(environment or {}),
            source=handler,
        )


__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_TIMEOUT", "FunctionSpec", "Runtime"]
