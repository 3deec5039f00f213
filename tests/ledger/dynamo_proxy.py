"""A pass-through proxy in front of moto's DynamoDB: one request at a time, and faults.

Why serialize: ``moto_server`` answers on many threads without a lock, so its
conditional writes are check-then-write races, and a failed transaction restores a
deep copy of the whole table (undoing other requests' writes made meanwhile). DynamoDB
itself is linearizable per item. Forwarding one request at a time makes moto
linearizable too, while the clients still race: which worker's request arrives first
is up to them, which is what the ledger's race tests are about.

Faults, each for the next ``times`` requests of one operation (-1: every one) whose
body contains ``match``:

* ``fail``: answer with a DynamoDB error (code, HTTP status) without forwarding;
* ``lose``: forward (moto applies it), then answer HTTP 500 -- a lost response;

``calls`` lists the operation of every request (``PutItem``, ``Query``, ...);
``by_item`` counts the single-item requests (``GetItem``, ``PutItem``, ``UpdateItem``,
``DeleteItem``) by operation and the kind of item, the prefix of its ``pk`` (``Q`` for
rate leases, ``R`` for a run, ...): what each part of the ledger costs;
``max_in_flight`` is the most requests the proxy held at once (queued or forwarded).

``meter=True`` counts the write units DynamoDB would bill (``units``, by operation), as
DynamoDB bills them: per item written, the larger of its size before and after in
1 KB units (at least one); a conditional write whose condition fails, the size of the
item it met; a delete, the size of the item deleted; twice that in a transaction.
moto's own ``ConsumedCapacity`` is a constant 1.0, so the proxy reads the item before
and after each write (straight from moto, not counted) and sizes them itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
import anyio
import orjson
from aiohttp import web

HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te",
     "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}
)  # fmt: skip
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
TARGET_PREFIX = "DynamoDB_20120810."
SINGLE_ITEM = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem"})
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                    "TransactWriteItems"})  # fmt: skip


@dataclass
class Fault:
    operation: str
    kind: str
    code: str = "InternalServerError"
    status: int = 500
    times: int = 1
    match: str = ""


@dataclass
class DynamoProxy:
    upstream: str
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    meter: bool = False
    units: Counter[str] = field(default_factory=Counter)
    by_item: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail(self, operation: str, code: str, *, status: int = 400, times: int = 1,
             match: str = "") -> None:  # fmt: skip
        self.faults.append(Fault(operation, "fail", code, status, times, match))

    def lose(self, operation: str, *, times: int = 1, match: str = "") -> None:
        self.faults.append(Fault(operation, "lose", times=times, match=match))

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def reset_stats(self) -> None:
        self.calls.clear()
        self.max_in_flight = 0
        self.units.clear()
        self.by_item.clear()

    @property
    def write_units(self) -> int:
        return sum(self.units.values())

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4, force_close=True)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)  # fmt: skip
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take(self, operation: str, body: bytes) -> Fault | None:
        for fault in self.faults:
            if fault.operation == operation and fault.times != 0 and (
                    fault.match.encode() in body):  # fmt: skip
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    @staticmethod
    def _error(code: str, status: int, **extra: Any) -> web.Response:
        body = {"__type": ERROR_PREFIX + code, "message": "injected by the test proxy", **extra}
        return web.Response(status=status, body=orjson.dumps(body),
                            content_type="application/x-amz-json-1.0")  # fmt: skip

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            async with self._lock:
                return await self._answer(request, body)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.calls.append(operation)
        if operation in SINGLE_ITEM:
            parsed = orjson.loads(body)
            key = parsed.get("Key") or parsed.get("Item") or {}
            self.by_item[operation, str(key.get("pk", {}).get("S", "")).partition("#")[0]] += 1
        fault = self._take(operation, body)
        if fault is not None and fault.kind == "fail":
            return self._error(fault.code, fault.status)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        metered = self.meter and operation in WRITES
        writes = await self._before(operation, body, headers) if metered else []
        async with self._session.post(
            self.upstream + request.rel_url.raw_path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS
            }
            status = upstream.status
        if metered:
            failed = status == 400 and b"ConditionalCheckFailed" in payload
            await self._after(operation, writes, headers, failed=failed)
        if fault is not None and fault.kind == "lose":
            return self._error("InternalServerError", 500)
        return web.Response(status=status, body=payload, headers=out_headers)

    # -- metering ------------------------------------------------------------------------
    async def _before(
        self, operation: str, body: bytes, headers: dict[str, str]
    ) -> list[tuple[str, str, dict[str, Any], int]]:
        """(table, kind, key, size before) of every item the write touches."""
        request = orjson.loads(body)
        touched: list[tuple[str, str, dict[str, Any]]] = []
        if operation == "PutItem":
            item = request["Item"]
            touched.append((request["TableName"], "put", {"pk": item["pk"], "sk": item["sk"]}))
        elif operation in ("UpdateItem", "DeleteItem"):
            kind = "update" if operation == "UpdateItem" else "delete"
            touched.append((request["TableName"], kind, request["Key"]))
        elif operation == "BatchWriteItem":
            for table, requests in request["RequestItems"].items():
                for r in requests:
                    if "PutRequest" in r:
                        item = r["PutRequest"]["Item"]
                        touched.append((table, "put", {"pk": item["pk"], "sk": item["sk"]}))
                    else:
                        touched.append((table, "delete", r["DeleteRequest"]["Key"]))
        else:  # TransactWriteItems
            for r in request["TransactItems"]:
                ((kind, spec),) = r.items()
                key = spec.get("Key") or {"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]}
                touched.append((spec["TableName"], "transact", key))
        return [(table, kind, key, await self._size(table, key, headers))
                for table, kind, key in touched]  # fmt: skip

    async def _after(
        self, operation: str, writes: list[tuple[str, str, dict[str, Any], int]],
        headers: dict[str, str], *, failed: bool,
    ) -> None:  # fmt: skip
        from dispatcher.ledger.dynamodb._items import write_units

        for table, kind, key, before in writes:
            if failed or kind == "delete":
                units = write_units(before)
            else:
                units = write_units(max(before, await self._size(table, key, headers)))
            self.units[operation] += units * (2 if kind == "transact" else 1)

    async def _size(self, table: str, key: dict[str, Any], headers: dict[str, str]) -> int:
        from dispatcher.ledger.dynamodb._items import item_size

        assert self._session is not None
        get_headers = {**headers, "X-Amz-Target": TARGET_PREFIX + "GetItem"}
        request = orjson.dumps({"TableName": table, "Key": key, "ConsistentRead": True})
        async with self._session.post(self.upstream + "/", headers=get_headers,
                                      data=request) as answer:  # fmt: skip
            item = orjson.loads(await answer.read()).get("Item")
        return item_size(item) if item else 0
