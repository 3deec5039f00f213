"""Worker launcher: tie the worker's process group to the host, then become the runtime.

Run as a script (never imported by the host), so that a worker does not pay for
importing the dispatcher:

    python _launch.py HOST_PID LIFELINE_FD exec COMMAND [ARG ...]  -> execvp (Node.js workers)
    python _launch.py HOST_PID LIFELINE_FD python HANDLER          -> awslambdaric, in-process

The host starts it as the leader of a new session and process group. Before the runtime
starts, the launcher makes sure the group dies with the host, however the host ends:

- ``PR_SET_PDEATHSIG`` (Linux; survives ``execve``) has the kernel SIGKILL the launcher,
  and so the runtime, when the host dies; it exits at once if the host is already gone.
- A watchdog process in the same group (a ``/bin/sh``, about 1 MB) blocks reading the
  host's lifeline pipe, whose only write end the host holds. End of file means the
  host has exited or was killed; the watchdog then SIGKILLs the whole group, with
  everything the handler started there (PR_SET_PDEATHSIG alone would leave those
  running). It is double-forked, so it is no child of the runtime: a handler that
  reaps its children with ``wait()`` cannot take it. ``LIFELINE_FD`` -1: no watchdog.
"""

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _die_with_parent(ppid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: best effort
            pass
    if os.getppid() != ppid:
        os._exit(1)


def _watch_lifeline(fd: int) -> None:
    """Start the watchdog (see the module docstring); the runtime keeps no lifeline fd."""
    if fd < 0:
        return
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                _watchdog(fd)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    os.close(fd)


def _watchdog(fd: int) -> None:
    # Hold none of the worker's files: an output pipe must close when the worker's
    # real processes exit, not when the watchdog does.
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    os.dup2(fd, 3)
    os.closerange(4, 65536)
    try:  # a shell waits in ~1 MB, where this Python would keep ~9 MB
        os.execv("/bin/sh", ["sh", "-c", "read _ <&3; kill -9 0"])
    except OSError:
        pass
    try:
        while os.read(3, 4096):  # nothing is ever written: this returns b"" at EOF
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)


def _route_init_errors(path: str) -> None:
    """Let awslambdaric reach the Runtime API through a path prefix.

    Its native client puts everything after ``HOST:PORT`` in ``AWS_LAMBDA_RUNTIME_API``
    in front of the Runtime API paths (next, response, error), but its http.client
    fallback (init errors) takes the variable as ``HOST:PORT`` only.
    """
    from awslambdaric.lambda_runtime_client import LambdaRuntimeClient

    address = os.environ["AWS_LAMBDA_RUNTIME_API"].partition("/")[0]
    original: Callable[..., Any] = LambdaRuntimeClient.call_rapid

    def call_rapid(self: Any, http_method: str, endpoint: str, *args: Any, **kw: Any) -> Any:
        self.lambda_runtime_address = address
        return original(self, http_method, f"/{path}{endpoint}", *args, **kw)

    LambdaRuntimeClient.call_rapid = call_rapid


def main(argv: list[str]) -> None:
    ppid, lifeline, mode = int(argv[1]), int(argv[2]), argv[3]
    _die_with_parent(ppid)
    _watch_lifeline(lifeline)
    if mode == "exec":
        os.execvp(argv[4], argv[4:])
    elif mode == "python":
        # sys.path[0] is this file's folder: replace it with the task root (the cwd),
        # as ``python -m awslambdaric`` would have it.
        sys.path[0] = os.getcwd()
        path = os.environ["AWS_LAMBDA_RUNTIME_API"].partition("/")[2]
        if path:
            _route_init_errors(path)
        from awslambdaric.__main__ import main as ric_main

        ric_main(["awslambdaric", argv[4]])
    else:  # pragma: no cover - the host only uses the two modes above
        sys.exit(f"unknown launcher mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
