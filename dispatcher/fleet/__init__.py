"""A fleet of identical workers on AWS: the segment and results in S3, shard jobs on SQS,
the ledger in DynamoDB. No home-made cluster.

* ``submit`` (``dispatcher submit``): plan the shards, learn what only the whole segment
  knows (``plan``: duplicate addresses, shared endpoint ids), record the run, enqueue one
  ``jobs.ShardJob`` per shard;
* ``worker`` (``dispatcher worker``): the SQS lifecycle -- long poll, heartbeat, grace
  on SIGTERM, dead-letter settling -- around ``shard.run_shard``, which runs one job
  through the same context and stages as ``dispatcher run``;
* ``metrics``: a worker's Prometheus counters; ``s3output``: shard parts and the summary.

The heavy modules load on first use: ``from dispatcher.fleet import Worker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.fleet.jobs import JOB_TYPE, LineBits, ShardJob
    from dispatcher.fleet.submit import submit
    from dispatcher.fleet.worker import Worker, WorkerStats

__all__ = ["JOB_TYPE", "LineBits", "ShardJob", "Worker", "WorkerStats", "submit"]

_LAZY = {"JOB_TYPE": "jobs", "LineBits": "jobs", "ShardJob": "jobs", "submit": "submit",
         "Worker": "worker", "WorkerStats": "worker"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"dispatcher.fleet.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dispatcher.fleet' has no attribute {name!r}")
