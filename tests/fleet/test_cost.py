"""What a fleet run costs in DynamoDB write units (issue 14, target 5: <= 0.2 per
endpoint), counted on the wire by a metering proxy in front of moto (``cost.py``).

A count, not a timing: claims made together share a page write, so the count depends
on how many claims arrive together; the bound holds with none sharing (a page write
per send call of 10 SMS messages is 0.1 units per endpoint, outcome blocks ~0.03).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.testing import ServerProcess
from dispatcher.testing.moto import MotoServer
from tests.fleet.cost import fleet_write_units

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_a_fleet_run_costs_at_most_0_2_write_units_per_endpoint(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    n = 2000
    with ServerProcess("sms") as sms:
        result = await fleet_write_units(moto_url=moto_server.url, workdir=tmp_path,
                                         endpoints=n, shard_size=500, workers=2,
                                         sms_url=sms.url, duplicate_every=50)  # fmt: skip
        delivered = len(sms.messages())
    summary = result["summary"]
    assert summary["Total"] == n and summary["Shards"] == 4
    assert summary["ByStatus"] == {"SUCCESS": n - n // 50, "DUPLICATE_ADDRESS": n // 50}
    assert delivered == n - n // 50
    assert set(result["units"]) <= {"PutItem", "UpdateItem"}, "no per-endpoint history"
    assert result["units_per_endpoint"] <= 0.2, result
