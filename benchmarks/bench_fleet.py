"""Fleet throughput with 1, 2 and 4 workers beside ideal linear scaling.

    python benchmarks/bench_fleet.py [--endpoints 20000] [--latency 0.05] [--workers 1,2,4]

Everything runs on loopback: moto (S3, SQS, DynamoDB) in its own process, the SMS test
server for sends, and a hook that sleeps ``--latency`` seconds per call (simulated
downstream latency) with ``--hook-concurrency`` calls in flight per worker, so one
worker's throughput is bounded by its hook: more workers should scale linearly until
something shared saturates. Here that could be moto, a single Python process that serves
a few hundred conditional writes a second (the ledger makes about one per 12 endpoints,
see ``bench_fleet_cost``), so the defaults keep the fleet below it: one endpoint per
hook call, one call in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

HOOK = """
import time

def handler(event, context):
    time.sleep({latency})
    return event["Endpoints"]
"""

CONFIG = """
[project]
ApplicationId = "bench"
Region = "us-east-1"
[campaign]
Id = "fleet-bench-{run}"
[campaign.Hook]
LambdaFunctionName = "slow"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{{{Id}}}}"
OriginationNumber = "+12065550000"
[functions.slow]
python = "hook.py:handler"
[channels.SMS]
sender = "sms"
endpoint_url = "{sms}"
[ledger]
dynamodb_table = "ledger"
[dispatch]
hook_concurrency = {hook_concurrency}
chunk_size = {chunk_size}
send_concurrency = 4
"""


def main() -> None:
    import boto3

    from dispatcher.testing import ServerProcess
    from dispatcher.testing.moto import MotoServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=800)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--hook-concurrency", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=1,
                        help="endpoints per hook call (1: every endpoint waits --latency)")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    results = []
    with MotoServer() as moto, ServerProcess("sms") as sms, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        kw = {"endpoint_url": moto.url, "region_name": "us-east-1"}
        s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        s3.create_bucket(Bucket="bench")
        lines = (json.dumps({"Id": f"e{i}", "ChannelType": "SMS", "Address": f"+1{2060000000 + i}"})
                 for i in range(args.endpoints))  # fmt: skip
        s3.put_object(Bucket="bench", Key="seg/segment.jsonl", Body="\n".join(lines).encode())
        subprocess.run([sys.executable, "-c", "import anyio; from dispatcher.ledger.dynamodb "
                        "import DynamoLedger as L; anyio.run(L('ledger', region='us-east-1')"
                        ".create_table)"], env=env, check=True, cwd=ROOT)  # fmt: skip
        (Path(tmp) / "hook.py").write_text(HOOK.format(latency=args.latency))
        shard = max(10, args.endpoints // 16)  # 16 shards: enough for 4 workers
        for n_workers in counts:
            attributes = {"VisibilityTimeout": "60"}
            queue = sqs.create_queue(QueueName=f"bench-{n_workers}", Attributes=attributes)[
                "QueueUrl"
            ]
            cfg = Path(tmp) / f"fleet-{n_workers}.toml"
            cfg.write_text(CONFIG.format(run=n_workers, sms=sms.url, chunk_size=args.chunk_size,
                                         hook_concurrency=args.hook_concurrency))  # fmt: skip
            submit = subprocess.run(
                [sys.executable, "-m", "dispatcher", "submit", str(cfg), "--queue", queue,
                 "--segment", "s3://bench/seg/segment.jsonl", "--shard-size", str(shard)],
                env=env, cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            run_id = submit.stdout.split()[1]
            started = time.monotonic()
            workers = [subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "worker", "--queue", queue, "--burst",
                 "--wait", "1"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
                for _ in range(n_workers)]  # fmt: skip
            for w in workers:
                w.wait()
            seconds = time.monotonic() - started
            summary = json.loads(s3.get_object(
                Bucket="bench", Key=f"seg/runs/{run_id}/summary.json")["Body"].read())  # fmt: skip
            results.append({"workers": n_workers, "seconds": round(seconds, 2),
                            "endpoints": summary["Total"],
                            "endpoints_per_s": round(summary["Total"] / seconds)})  # fmt: skip
    base = results[0]["endpoints_per_s"] / results[0]["workers"]
    print(f"{args.endpoints:,} endpoints, hook latency {args.latency * 1000:.0f} ms, "
          f"{args.hook_concurrency} hook call(s) in flight per worker")
    print(f"{'workers':>8}{'endpoints/s':>14}{'ideal':>10}{'of ideal':>10}")
    for r in results:
        ideal = base * r["workers"]
        r["ideal_endpoints_per_s"] = round(ideal)
        print(f"{r['workers']:>8}{r['endpoints_per_s']:>14,}{round(ideal):>10,}"
              f"{r['endpoints_per_s'] / ideal:>10.0%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
