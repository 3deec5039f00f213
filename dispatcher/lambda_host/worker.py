"""Worker processes: one runtime interface client each, behind its own Runtime API port.

A worker is what Lambda calls an execution environment: one process that runs one
invocation at a time. It gets a Runtime API listening socket of its own on loopback and
a secret of its own: ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT/SECRET``. The runtime
clients put everything after ``HOST:PORT`` in front of the Runtime API paths, so every
request of the worker carries the secret, and the host answers only requests whose port
and secret both name the same live worker (see ``runtime_api``). The secret travels in
the environment, which other users cannot read (``/proc/PID/environ`` is private to the
process's owner), never on the command line, which they can.

Workers are started through ``_launch.py`` in a new session (their own process group,
so a Ctrl-C in the terminal reaches only the host, and ``killpg`` also reaches anything
the handler spawned). The host kills the whole group whenever a worker ends, however it
ended; the launcher's watchdog kills it when the host itself dies (see ``_launch``).
Runtime clients blocked in ``next`` do not react to SIGTERM in a useful way, so the host
always stops a worker with SIGKILL: Lambda gives a function no shutdown hook either.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import os
import secrets
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
NODE_RUNTIME = Path(__file__).with_name("node_runtime.js")
"""The Node.js runtime interface client shipped with the package (no npm install)."""

_ids = itertools.count(1)
_RESERVED_PREFIXES = ("AWS_LAMBDA_", "_LAMBDA_", "LAMBDA_", "_HANDLER", "_X_AMZN_TRACE_ID")


@dataclass(frozen=True)
class WorkerConfig:
    """How the host starts workers (shared by all functions)."""

    region: str = "us-east-1"
    python: str = sys.executable
    node: str = "node"
    node_runtime: Path = NODE_RUNTIME
    """The Node.js runtime client script (``node_support.js`` must sit beside it)."""
    output: int | IO[Any] | None = None
    """Where worker stdout/stderr go: None = the host's stderr (fd 2), or a file, an fd
    or ``subprocess.DEVNULL``."""
    lifeline: int | None = None
    """Read end of the host's lifeline pipe: end of file there means the host is gone."""

    def check(self, runtimes: set[str]) -> None:
        """ConfigError now, rather than a failed first invocation, if a runtime is missing."""
        if "node" in runtimes and shutil.which(self.node) is None:
            raise ConfigError(
                f"Node.js handlers need Node.js: {self.node!r} is not on the PATH "
                "(install Node.js 18 or later)"
            )
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
        self.secret = secrets.token_urlsafe(32)
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
        self._group_ended = False

    def __repr__(self) -> str:  # never shows the secret
        pid = self.process.pid if self.process else None
        return f"<Worker {self.spec.name}#{self.id} pid={pid} port={self.port} alive={self.alive}>"

    async def start(self, config: WorkerConfig) -> None:
        """Start the process; it calls ``next`` on this worker's port when ready."""
        spec = self.spec
        lifeline = -1 if config.lifeline is None else config.lifeline
        launch = [str(LAUNCHER), str(os.getpid()), str(lifeline)]
        if spec.runtime == "node":
            # -I -S: the launcher only execs node, it needs no site-packages.
            command = [config.python, "-I", "-S", *launch,
                       "exec", config.node, str(config.node_runtime), spec.handler]
        else:  # the launcher becomes awslambdaric, which is in site-packages
            command = [config.python, *launch, "python", spec.handler]
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
            pass_fds=() if config.lifeline is None else (config.lifeline,),
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
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}/{self.secret}",
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
        else:
            env["AWS_EXECUTION_ENV"] = "AWS_Lambda_nodejs"
        return env

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (idempotent; the watcher reaps it).

        Also after the worker itself has exited: whatever it started is still in its
        group, and the group's id stays reserved (never reused as a process id) while
        any member is alive.
        """
        self.alive = False
        if self.process is None or self._group_ended:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is already empty
            pass

    def reaped(self) -> None:
        """The worker process has been reaped: kill what it left in its group, once.

        Right after reaping, the group's id can only be taken by a new group if the old
        one is empty and the kernel hands the same id out again within that instant; no
        later call signals it, so a long-dead worker never hits a reused group id.
        """
        self.kill()
        self._group_ended = True

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


__all__ = ["LAUNCHER", "NODE_RUNTIME", "Worker", "WorkerConfig", "exit_reason"]
