"""``--processes N``: one campaign run across N processes on one machine.

    coordinator (the dispatch() process)                 worker k of N (spawned)
      reads the segment once ─ record r goes to ──▶ records pipe k ──▶ execute(): the
      hash(ChannelType + Address) mod N                               whole pipeline
      counts, summary, timeline ◀──────────────── status pipe k ◀──── ready, progress, done

Partitioning by address sends every twin of an address to the same worker, in segment
order, so each worker's duplicate check is the whole segment's. Records keep their true
line numbers. All processes share the run's SQLite ledger (WAL: claims, outcomes and
history from every worker, so at-most-once, resume, retry, status and caps are what one
process gives) and ``outcomes.jsonl`` (each worker appends whole lines with one write).
The send rate is one run-wide ceiling shared through leases in a file beside the ledger.

The coordinator alone reads (a pipe or S3 is read once) and alone decides how the run
ends: it stops feeding on a signal or when a worker dies, tells every worker the segment
ended, and waits for them. Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole
process group; the coordinator's first stop is the graceful one) and stop on SIGTERM.
A worker killed outright loses nothing: its claims are durable before its sends, so a
resume settles what it left, and never sends twice.
"""

from dispatcher.processes.coordinator import (
    Partitioned,
    partition_of,
    processes_arg,
    run_partitioned,
)
from dispatcher.processes.protocol import WorkerSpec

__all__ = ["Partitioned", "WorkerSpec", "partition_of", "processes_arg", "run_partitioned"]
