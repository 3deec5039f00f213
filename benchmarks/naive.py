"""What a user would write instead: boto3 Lambda invokes from a ThreadPoolExecutor(32).

Reads the segment with the stdlib ``json``, cuts 50-endpoint events, invokes the hook
through boto3 from 32 threads, and writes one JSON line per endpoint kept (its
"send"). No eligibility, no dedup, no ledger, no retries: the floor of the naive way.

    python benchmarks/naive.py SEGMENT ENDPOINT_URL [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path


def events(segment: Path, size: int = 50):
    with segment.open() as f:
        lines = (json.loads(line) for line in f if line.strip())
        while chunk := list(islice(lines, size)):
            yield json.dumps({
                "ApplicationId": "bench-app", "CampaignId": "bench", "TreatmentId": "0",
                "Endpoints": {e.pop("Id"): e for e in chunk},
            })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("segment", type=Path)
    parser.add_argument("endpoint_url")
    parser.add_argument("--out", default=os.devnull)
    args = parser.parse_args()
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "lambda", endpoint_url=args.endpoint_url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(max_pool_connections=32, retries={"total_max_attempts": 1}),
    )  # fmt: skip

    def invoke(payload: str) -> dict:
        response = client.invoke(FunctionName="bench", Payload=payload)
        return json.loads(response["Payload"].read())

    started = time.perf_counter()
    sent = invocations = 0
    with ThreadPoolExecutor(32) as pool, open(args.out, "w") as out:
        for result in pool.map(invoke, events(args.segment)):
            invocations += 1
            for endpoint_id, endpoint in result.items():
                out.write(json.dumps({"EndpointId": endpoint_id, "Address": endpoint["Address"],
                                      "Body": "Hi"}) + "\n")  # fmt: skip
                sent += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "endpoints": sent, "invocations": invocations}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
