"""One ceiling shared by processes (SQLite) and fleet workers (DynamoDB on moto), checked
where it matters: arrival stamps at the SMS wire server, from independent processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pytest

from dispatcher.ledger.dynamodb import create_table_sync
from dispatcher.ratelimit import CAMPAIGN, Lease, LeaseError, SharedCeilings, SqliteLeaseStore
from dispatcher.ratelimit.shared import fair_shares, plan
from dispatcher.testing import ServerProcess
from tests.channels.wire import busiest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio
_tables = itertools.count()


@pytest.fixture(scope="module")
def sms_wire() -> Iterator[ServerProcess]:
    with ServerProcess("sms") as server:
        yield server


@pytest.fixture
def sms(sms_wire: ServerProcess) -> ServerProcess:
    sms_wire.reset()
    return sms_wire


def member(store: str, scope: str, rate: int, sms: ServerProcess, first: int, count: int,
           **env: str) -> subprocess.Popen[bytes]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "tests.channels.lease_member", "--store", store, "--scope", scope,
         "--rate", str(rate), "--sms", sms.url, "--first", str(first), "--count", str(count)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
    )  # fmt: skip


def result(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    return orjson.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


# -- the lease arithmetic -----------------------------------------------------------------


def test_fair_shares_are_whole_messages_that_add_up_to_the_ceiling() -> None:
    assert fair_shares(5, ["b", "a", "c"]) == {"a": 2, "b": 2, "c": 1}
    assert fair_shares(1, ["x", "y"]) == {"x": 1, "y": 0}
    assert fair_shares(20, []) == {}


def test_plan_grows_only_into_room_drops_the_dead_and_shrinks_only_when_told() -> None:
    now = 1000.0
    held = {"a": Lease(10, 10, now + 5)}
    joined = plan(held, member="b", ceiling=10, now=now, ttl=5, skew=1)
    assert joined["b"].share == 0 and joined["a"].share == 10  # no room until a shrinks
    shrunk = plan(joined, member="a", ceiling=10, now=now, ttl=5, skew=1, shrink_to=5)
    assert shrunk["a"] == Lease(5, 10.0, now + 5)
    grown = plan(shrunk, member="b", ceiling=10, now=now, ttl=5, skew=1)
    assert grown["b"].share == 5
    later = now + 5 + 1.01  # a's lease ended more than `skew` ago: a is gone
    alone = plan(grown, member="b", ceiling=10, now=later, ttl=5, skew=1)
    assert set(alone) == {"b"} and alone["b"].share == 10
    assert sum(lease.share for lease in grown.values()) <= 10


async def test_members_converge_to_fair_shares_and_take_back_a_leavers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    opts: dict[str, Any] = {"scope": "run", "ttl": 3.0, "renew_every": 0.2, "skew": 0.2}

    async def until(condition: Any) -> None:
        with anyio.fail_after(30):  # a bound against hanging, not a timing claim
            while not condition():  # noqa: ASYNC110 (polling another object's state)
                await anyio.sleep(0.05)

    a_store, b_store = SqliteLeaseStore(path), SqliteLeaseStore(path)
    async with SharedCeilings(a_store, member="a", **opts) as a:
        limit_a = a(CAMPAIGN, 9)
        await until(lambda: limit_a.rate == 9)
        async with SharedCeilings(b_store, member="b", **opts) as b:
            limit_b = b(CAMPAIGN, 9)
            await until(lambda: (limit_a.rate, limit_b.rate) == (5, 4))
        await until(lambda: limit_a.rate == 9)  # b gave its share back on leaving
    assert a_store.writes > 0
    await a_store.aclose()
    await b_store.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
async def test_lease_stores_apply_concurrent_updates_atomically(tmp_path, request, kind) -> None:
    # Two members (two stores, two connections) each add one to a counter 15 times at
    # once: a read-modify-write that raced would lose an increment.
    if kind == "sqlite":
        stores: list[Any] = [SqliteLeaseStore(tmp_path / "ledger.sqlite") for _ in range(2)]
    else:
        from dispatcher.aws import AwsClients
        from dispatcher.ledger.dynamodb import DynamoLedger
        from dispatcher.ratelimit.dynamodb import DynamoLeaseStore

        moto = request.getfixturevalue("moto")
        table = f"ledger-rate-{next(_tables)}"
        admin = DynamoLedger(table, region="us-east-1", endpoint_url=moto.url)
        await admin.create_table()
        await admin.aclose()
        clients = [AwsClients("us-east-1") for _ in range(2)]
        stores = [DynamoLeaseStore(table, clients=c, endpoint_url=moto.url) for c in clients]

    def bump(leases: dict[str, Lease]) -> dict[str, Lease]:
        count = leases.get("counter", Lease(0, 1e9, 4e9))
        return {**leases, "counter": Lease(count.share + 1, count.ceiling, count.expires)}

    async def member(store: Any) -> None:
        for _ in range(15):
            await store.update("scope/c", bump)

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(member, store)
    final = await stores[0].update("scope/c", lambda leases: dict(leases))
    assert final["counter"].share == 30
    assert sum(store.writes for store in stores) == 31
    emptied = await stores[1].update("scope/c", lambda leases: {})
    assert emptied == {} and await stores[0].update("scope/c", dict) == {}
    for store in stores:
        await store.aclose()
    if kind == "dynamodb":
        for c in clients:
            await c.aclose()


class FlakyStore:
    """A real in-memory ``LeaseStore`` that can be made to fail (the ledger unreachable)."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Lease]] = {}
        self.writes = 0
        self.down = False

    async def read(self, key: str) -> dict[str, Lease]:
        if self.down:
            raise LeaseError("ledger unreachable")
        return dict(self.leases.get(key, {}))

    async def update(self, key: str, change: Any) -> dict[str, Lease]:
        if self.down:
            raise LeaseError("ledger unreachable")
        self.leases[key] = change(dict(self.leases.get(key, {})))
        self.writes += 1
        return dict(self.leases[key])

    async def aclose(self) -> None:
        return None


async def test_a_member_that_cannot_renew_stops_sending_before_its_lease_ends() -> None:
    store = FlakyStore()
    async with SharedCeilings(store, scope="run", member="m", ttl=2.5, renew_every=0.2,
                              skew=0.2, stop_early=1.1) as ceilings:  # fmt: skip
        limiter = ceilings(CAMPAIGN, 5)
        with anyio.fail_after(30):
            while limiter.rate < 5:  # noqa: ASYNC110 (the keeper's first renewal)
                await anyio.sleep(0.05)
        (await limiter.acquire(1)).done()
        store.down = True
        last = store.leases["run/campaign"]["m"].expires
        with anyio.fail_after(30):
            while time.time() < last - 1.1:  # noqa: ASYNC110 (until the lease runs out)
                await anyio.sleep(0.05)
        with anyio.move_on_after(0.5) as waited:
            (await limiter.acquire(1)).done()
        assert waited.cancelled_caught  # no grant on a lease that ran out
        store.down = False
        with anyio.fail_after(30):  # renewed: grants again
            (await limiter.acquire(1)).done()


# -- processes sharing one SQLite ledger file ---------------------------------------------


async def test_two_processes_share_one_ceiling_through_the_sqlite_ledger(tmp_path, sms) -> None:
    store = f"sqlite:{tmp_path / 'ledger.sqlite'}"
    rate = 20
    members = [member(store, "run-1", rate, sms, first=1 + 1000 * i, count=40) for i in range(2)]
    results = [result(p) for p in members]
    arrivals = sms.arrivals()
    assert [r["sent"] for r in results] == [40, 40]
    assert len(arrivals) == 80
    assert busiest(arrivals) <= rate


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
async def test_a_killed_process_gives_its_share_back_when_its_lease_ends(
    tmp_path, sms, request, kind
) -> None:
    # A fleet worker's leases live in DynamoDB: the same reclaim, through the other store.
    env: dict[str, str] = {}
    if kind == "sqlite":
        store = f"sqlite:{tmp_path / 'ledger.sqlite'}"
    else:
        moto = request.getfixturevalue("moto")
        table = f"ledger-rate-{next(_tables)}"
        assert await anyio.to_thread.run_sync(lambda: create_table_sync(
            table, region="us-east-1", endpoint_url=moto.url))  # fmt: skip
        store, env = f"dynamodb:{table}", {"AWS_ENDPOINT_URL": moto.url}
    rate = 10
    doomed = member(store, "run-2", rate, sms, first=1, count=10_000, **env)
    survivor = member(store, "run-2", rate, sms, first=20_000, count=40, **env)
    try:
        with anyio.fail_after(60):
            while not any(m["DestinationPhoneNumber"].startswith("+1206002")  # noqa: ASYNC110
                          for m in sms.messages()):  # fmt: skip
                await anyio.sleep(0.2)  # until the survivor holds a share and sends
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        survived = result(survivor)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.communicate()
    assert survived["sent"] == 40
    assert survived["final_share"] == rate  # the dead member's share came back
    assert busiest(sms.arrivals()) <= rate


# -- fleet workers sharing the DynamoDB ledger table (moto) -------------------------------


def test_three_fleet_workers_share_one_ceiling_through_dynamodb(moto, sms) -> None:
    table = f"ledger-rate-{next(_tables)}"
    assert create_table_sync(table, region="us-east-1", endpoint_url=moto.url)
    rate = 15
    members = [member(f"dynamodb:{table}", "run-3", rate, sms, first=1 + 1000 * i, count=20,
                      AWS_ENDPOINT_URL=moto.url) for i in range(3)]  # fmt: skip
    results = [result(p) for p in members]
    arrivals = sms.arrivals()
    assert [r["sent"] for r in results] == [20, 20, 20]
    assert busiest(arrivals) <= rate
    # The cost: lease writes per second of sending, per worker (reported in the docs).
    per_second = [r["store_writes"] / r["seconds"] for r in results]
    print(f"lease writes per second of sending, per worker: {per_second}")
    assert max(per_second) < 10, per_second
