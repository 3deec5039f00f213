"""Worker processes: one runtime interface client each, behind its own Runtime API port.

A worker is what Lambda calls an execution environment: one process that runs one
invocation at a time. It gets a Runtime API listening socket of its own on loopback
(``AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT``), so the host knows which process every
``next`` / ``response`` / ``error`` request comes from, and can kill exactly the
process that timed out.

Workers are started through ``_launch.py`` in a new session (their own process group,
so a Ctrl-C in the terminal reaches only the host, and ``killpg`` also reaches anything
the handler spawned), with ``PR_SET_PDEATHSIG`` so that they die with the host even if
the host is SIGKILLed. Runtime clients blocked in ``next`` do not react to SIGTERM in a
useful way, so the host always stops a worker with SIGKILL: Lambda gives a function no
shutdown hook either.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from dispatcher.errors import ConfigError
from dispatcher.lambda_host.invocation import Invocation
from dispatcher.lambda_host.spec import FunctionSpec

LAUNCHER = Path(__file__).with_name("_launch.py")
NODE_PACKAGE_DIR = Path(__file__).parent
"""Where ``package.json`` is: ``npm ci --prefix dispatcher/lambda_host`` installs here."""

_ids = itertools.count(1)
_RESERVED_PREFIXES = ("AWS_LAMBDA_", "_LAMBDA_", "LAMBDA_", "_HANDLER", "_X_AMZN_TRACE_ID")


@dataclass(frozen=True)
class WorkerConfig:
    """How the host starts workers (shared by all functions)."""

    region: str = "us-east-1"
    python: str = sys.executable
    node: str = "node"
    node_ric: Path | None = None
    output: int | IO[Any] | None = None
    """Where worker stdout/stderr go: None = the host's stderr (fd 2), or a file, an fd
    or ``subprocess.DEVNULL``."""

    def node_ric_bin(self) -> Path:
        """The Node.js runtime interface client's entry point; ConfigError if missing."""
        root = self.node_ric or NODE_PACKAGE_DIR / "node_modules" / "aws-lambda-ric"
        entry = root / "bin" / "index.mjs"
        if not entry.is_file():
            raise ConfigError(
                f"the Node.js runtime interface client is not installed ({entry} is missing): "
                f"run `npm ci --prefix {NODE_PACKAGE_DIR}`"
            )
        return entry

    def check(self, runtimes: set[str]) -> None:
        """ConfigError now, rather than a failed first invocation, if a runtime is missing."""
        if "node" in runtimes:
            if shutil.which(self.node) is None:
                raise ConfigError(f"Node.js handlers need {self.node!r} on the PATH")
            self.node_ric_bin()
        if "python" in runtimes and self.python == sys.executable:
            if importlib.util.find_spec("awslambdaric") is None:
                raise ConfigError(
                    "Python handlers need awslambdaric: "
                    "pip install 'segment-dispatcher[lambda-host]'"
                )


class Worker:
    """One worker process and its Runtime API socket; ``current`` is its invocation."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.id = next(_ids)
        self.spec = spec
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        send, receive = anyio.create_memory_object_stream[Invocation](1)
        self.inbox: MemoryObjectSendStream[Invocation] = send
        self.next_invocation: MemoryObjectReceiveStream[Invocation] = receive
        self.process: Process | None = None
        self.current: Invocation | None = None
        self.init_error: bytes | None = None
        self.alive = True
        self.invocations = 0

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Worker {self.spec.name}#{self.id} pid={pid} port={self.port} alive={self.alive}>"

    async def start(self, config: WorkerConfig) -> None:
        """Start the process; it calls ``next`` on this worker's port when ready."""
        spec = self.spec
        if spec.runtime == "node":
            command = [
                config.python, "-I", "-S", str(LAUNCHER), "exec", str(os.getpid()),
                config.node, str(config.node_ric_bin()), spec.handler,
            ]
        else:
            command = [config.python, str(LAUNCHER), "python", str(os.getpid()), spec.handler]
        # fd 2 rather than sys.stderr, which may be replaced by an object without a file.
        output = config.output if config.output is not None else 2
        self.process = await anyio.open_process(
            command,
            cwd=spec.task_root,
            env=self.environment(config),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )

    def environment(self, config: WorkerConfig) -> dict[str, str]:
        """The host's environment, the function's, and Lambda's reserved variables."""
        spec = self.spec
        stream = f"{dt.datetime.now(dt.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        # Lambda's own variables come from the host alone (an inherited
        # AWS_LAMBDA_MAX_CONCURRENCY, say, would switch the runtime client's mode).
        env = {k: v for k, v in os.environ.items() if not k.startswith(_RESERVED_PREFIXES)}
        env.update(spec.environment)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                "AWS_REGION": config.region,
                "AWS_DEFAULT_REGION": config.region,
                "LAMBDA_TASK_ROOT": str(spec.task_root),
                "_HANDLER": spec.handler,
            }
        )
        if spec.runtime == "python":
            env["AWS_EXECUTION_ENV"] = (
                f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
            )
        return env

    def kill(self) -> None:
        """SIGKILL the worker's process group (idempotent; the watcher reaps it)."""
        self.alive = False
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    def close_socket(self) -> None:
        self.inbox.close()
        self.sock.close()


def exit_reason(returncode: int) -> str:
    """Lambda's wording for a runtime that exited: ``exit status 1`` / ``signal: killed``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return {"SIGKILL": "signal: killed", "SIGTERM": "signal: terminated"}.get(
            name, f"signal: {name.removeprefix('SIG').lower()}"
        )
    return f"exit status {returncode}"


__all__ = ["LAUNCHER", "NODE_PACKAGE_DIR", "Worker", "WorkerConfig", "exit_reason"]
