"""Worker launcher: tie the worker's life to the host, then become the runtime client.

Run as a script (never imported by the host), so that a worker does not pay for
importing the dispatcher:

    python _launch.py exec PPID COMMAND [ARG ...]   -> execvp(COMMAND) (Node.js workers)
    python _launch.py python PPID HANDLER           -> awslambdaric in this interpreter

On Linux it first asks the kernel to SIGKILL this process when the host dies
(``PR_SET_PDEATHSIG`` survives ``execve``), and exits if the host is already gone,
so a host killed with SIGKILL leaves no orphan worker behind.
"""

import os
import signal
import sys


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


def main(argv: list[str]) -> None:
    mode, ppid = argv[1], int(argv[2])
    _die_with_parent(ppid)
    if mode == "exec":
        os.execvp(argv[3], argv[3:])
    elif mode == "python":
        # sys.path[0] is this file's folder: replace it with the task root (the cwd),
        # as ``python -m awslambdaric`` would have it.
        sys.path[0] = os.getcwd()
        from awslambdaric.__main__ import main as ric_main

        ric_main(["awslambdaric", argv[3]])
    else:  # pragma: no cover - the host only uses the two modes above
        sys.exit(f"unknown launcher mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
