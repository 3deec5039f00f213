"""Send-rate ceilings that hold at the provider, in one process and across many.

* ``RateLimiter`` (``local``): one process's ceiling; a grant is an open ``Permit``
  until its request is done, so the ceiling holds for arrival times at the provider.
* ``all_of`` (``compose``) composes limiters, narrowest first; ``NoLimit`` is the
  empty ceiling.
* ``Pacing`` and ``CeilingFactory`` (``pacing``): how a run makes its ceilings (the
  campaign's, a sender's own, per identity) and hands them to self-pacing senders.
* ``SharedCeilings`` (``shared``): a ``CeilingFactory`` whose ceilings are shared by
  processes or fleet workers through leases in a ``LeaseStore``: ``SqliteLeaseStore``
  (``dispatcher.ratelimit.sqlite``) or ``DynamoLeaseStore``
  (``dispatcher.ratelimit.dynamodb``, imported on use: it pulls in botocore).

See ``docs/send-rate.md``.
"""

from dispatcher.ratelimit.compose import NoLimit, all_of
from dispatcher.ratelimit.local import Limiter, Permit, RateLimiter
from dispatcher.ratelimit.pacing import CAMPAIGN, CeilingFactory, Pacing, local_ceilings
from dispatcher.ratelimit.shared import Lease, LeaseError, LeaseStore, SharedCeilings
from dispatcher.ratelimit.sqlite import SqliteLeaseStore

__all__ = [
    "CAMPAIGN",
    "CeilingFactory",
    "Lease",
    "LeaseError",
    "LeaseStore",
    "Limiter",
    "NoLimit",
    "Pacing",
    "Permit",
    "RateLimiter",
    "SharedCeilings",
    "SqliteLeaseStore",
    "all_of",
    "local_ceilings",
]
