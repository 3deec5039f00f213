"""Hardening seen from outside (issue 12): processes that must exit, memory that must
stay bounded whatever a hook answers. Peak RSS is read with RUSAGE_CHILDREN by a fresh
parent of the measured process, never timed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def peak_rss_mb(script: str, *args: str, timeout: float = 120) -> tuple[float, str]:
    """Run ``script`` in a child of a fresh Python process; (its peak RSS in MB, stdout)."""
    measure = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(r.stdout.strip())\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", measure, sys.executable, "-c", script, *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stderr
    *lines, rss = out.stdout.strip().splitlines()
    return float(rss), "\n".join(lines)


SERVER = textwrap.dedent("""
    import socket
    from aiohttp import web

    async def huge(request):
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        block = b" " * (1 << 20)
        try:
            for _ in range(200):
                await response.write(block)
        except Exception:
            pass
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", huge)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)  # listening already: no wait, no port race
    web.run_app(app, sock=sock, print=None)
""")

CLIENT = textwrap.dedent("""
    import os, sys, anyio
    from dispatcher.hooks.aws_lambda import LambdaTransport
    from dispatcher.errors import HookResultError
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")

    async def main():
        async with LambdaTransport("big", region="us-east-1",
                                   endpoint_url=sys.argv[1]) as transport:
            try:
                await transport.invoke(b'{"Endpoints": {}}')
            except HookResultError as exc:
                print("refused:", exc)

    anyio.run(main)
""")


def test_a_200_mb_hook_answer_is_never_buffered() -> None:
    with subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                          text=True) as server:  # fmt: skip
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            rss, out = peak_rss_mb(CLIENT, f"http://127.0.0.1:{port}")
        finally:
            server.kill()
    assert "refused:" in out and "limit" in out
    assert rss < 150, f"peak RSS {rss:.0f} MB while refusing a 200 MB answer"


HUNG_HOOK_RUN = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from dispatcher import run
    from tests.conftest import endpoint, make_settings, write_jsonl

    tmp = Path(sys.argv[1])
    segment = write_jsonl(tmp / "seg.jsonl", [endpoint(i) for i in range(1, 4)])

    def hung(event, context):
        threading.Event().wait()  # never returns

    settings = make_settings(tmp, campaign={"Hook": {"LambdaFunctionName": "h"}},
                             dispatch={"hook_attempt_timeout": 0.3, "hook_deadline": 0.5})
    summary = run(settings, segment=str(segment), out_dir=tmp / "o", handlers={"h": hung},
                  progress=False)
    print(summary.by_status)
""")


def test_a_hung_sync_hook_does_not_keep_a_library_caller_alive(tmp_path: Path) -> None:
    """Before: summary.json written, then the process waited forever on the hook's thread."""
    done = subprocess.run([sys.executable, "-c", HUNG_HOOK_RUN, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "'HOOK_FAILURE': 3" in done.stdout
    assert (tmp_path / "o" / "summary.json").exists()


def test_the_segment_can_come_from_stdin(tmp_path: Path) -> None:
    """``--segment -`` reads standard input (issue 15), e.g. from an export tool."""
    segment = (ROOT / "config" / "sample-segment.jsonl").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "run", "config/example.toml", "--segment", "-",
         "--out", str(tmp_path)],
        cwd=ROOT, input=segment, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    summary = json.loads(done.stdout)
    assert summary["Total"] == len(segment.splitlines())
    assert json.loads((tmp_path / "run.json").read_text())["Segment"] == "-"
