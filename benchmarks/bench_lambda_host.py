"""The Lambda transports against ``dispatcher lambda serve`` itself (real workers).

    python benchmarks/bench_lambda_host.py [--calls 1000] [--concurrency 1,8]

Starts the local Lambda host with a Python echo handler (the function returns the
event's endpoints, under awslambdaric in a worker process), then measures, in the same
run and against the same host: the lean Lambda transport, stock aiobotocore
``lambda.invoke``, and a plain aiohttp POST of the same bytes — invocations/s and client
CPU per invocation. The host's own CPU is not counted: it is the server.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ECHO = '''
def handler(event, context):
    return event["Endpoints"]
'''


def main() -> None:
    from benchmarks.bench_lambda import FUNCTION, run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    levels = tuple(int(c) for c in args.concurrency.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        handler = Path(tmp) / "echo.py"
        handler.write_text(ECHO)
        host = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
             "--concurrency", str(max(levels)), f"{FUNCTION}={handler}:handler"],
            stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
        )  # fmt: skip
        try:
            assert host.stdout is not None
            line = host.stdout.readline()
            url = line.split("listening on ")[1].split()[0]
            report = run(concurrency=levels, calls=args.calls,
                         variants=("lean", "stock", "floor"), server_url=url)  # fmt: skip
        finally:
            host.send_signal(signal.SIGTERM)
            host.wait(timeout=30)
    print("client CPU per invocation against `dispatcher lambda serve` (Python echo worker)")
    print(f"{'conc':>4} {'variant':<8}{'calls/s':>9}{'CPU ms/call':>13}")
    for conc, variants in report["results"].items():
        for variant, f in variants.items():
            print(f"{conc:>4} {variant:<8}{f['per_s']:>9.0f}{f['cpu_ms_per_call']:>13.3f}")
    for conc, ratios in report["ratios"].items():
        print(f"{conc:>4} " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
