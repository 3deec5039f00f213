"""Where event-stream records go: a JSON-lines file, Amazon Data Firehose, Kinesis."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import orjson

from dispatcher.aws import AwsClients
from dispatcher.aws.errors import classify
from dispatcher.aws.retry import retrying as aws_retrying
from dispatcher.errors import ConfigError, EventStreamError

FIREHOSE_MAX_RECORDS = 500
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024
FIREHOSE_MAX_RECORD = 1000 * 1024
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD = 1024 * 1024
"""Per-call and per-record limits (Kinesis counts the partition key too)."""


@runtime_checkable
class EventSink(Protocol):
    """Where event records go. ``open()`` before the run; ``aclose()`` once at the end."""

    written: int
    lost: int

    async def open(self) -> None: ...

    async def write(self, records: list[dict[str, Any]]) -> None: ...

    async def aclose(self) -> None: ...


class JsonLinesSink:
    """Appends one JSON object per line to a local file."""

    def __init__(self, path: Path, *, file: str | None = None) -> None:
        self.path = path
        self.written = 0
        self.lost = 0
        self._config_file = file
        self._file: IO[bytes] | None = None

    async def open(self) -> None:
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        except OSError as exc:
            raise ConfigError(
                f"cannot open {str(self.path)!r}: {exc.strerror}",
                file=self._config_file, key="event_stream.path",
            ) from None  # fmt: skip

    async def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        await self.open()
        assert self._file is not None
        self._file.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        self._file.flush()  # a batch at a time: readers (tail -f) see whole batches
        self.written += len(records)

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __repr__(self) -> str:
        return f"JsonLinesSink({str(self.path)!r}, written={self.written})"


class _Retry(Exception):
    """Internal: these items are worth another attempt."""

    def __init__(self, items: list[tuple[bytes, str]], reason: str) -> None:
        self.items = items
        self.reason = reason


class _AwsSink:
    """What the Firehose and Kinesis sinks share: splitting, retries, error mapping."""

    service = ""
    max_records = 500
    max_bytes = 0
    max_record = 0
    key_counts = False  # whether the partition key counts towards the size limits

    def __init__(
        self,
        clients: AwsClients,
        *,
        arn: str,
        region: str,
        name: str,
        endpoint_url: str | None = None,
        attempts: int = 5,
        backoff: float = 0.2,
        backoff_max: float = 5.0,
        config_file: str | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"'attempts' must be >= 1, got {attempts}")
        self.clients = clients
        self.arn = arn
        self.region = region
        self.name = name
        self.endpoint_url = endpoint_url
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.config_file = config_file
        self.written = 0
        self.lost = 0
        self.calls = 0
        self.last_error: str | None = None

    async def _client(self) -> Any:
        return await self.clients.client(
            self.service, endpoint_url=self.endpoint_url, region=self.region
        )

    # -- subclasses -------------------------------------------------------------------

    def _encode(self, record: dict[str, Any]) -> tuple[bytes, str]:
        raise NotImplementedError

    async def _describe(self, client: Any) -> None:
        raise NotImplementedError

    async def _put(self, client: Any, items: list[tuple[bytes, str]]) -> list[str | None]:
        """One call; per item, None if accepted, else the error code."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------

    async def open(self) -> None:
        """Check that the destination exists (a missing one is a ConfigError)."""
        client = await self._client()
        try:
            await self._describe(client)
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            if fault.code == "ResourceNotFoundException":
                raise ConfigError(
                    f"{self.arn} does not exist (or is in another region/account)",
                    file=self.config_file,
                    key="event_stream.DestinationStreamArn",
                ) from None
            if fault.kind == "credentials":
                raise EventStreamError(str(fault), destination=self.arn) from exc
            if fault.kind != "rejected":
                raise EventStreamError(f"cannot reach the service: {fault}",
                                       destination=self.arn) from exc  # fmt: skip
            # Describe may simply not be granted; the writes themselves will tell.

    async def write(self, records: list[dict[str, Any]]) -> None:
        batch: list[tuple[bytes, str]] = []
        size = 0
        for record in records:
            item = self._encode(record)
            n = len(item[0]) + (len(item[1].encode()) if self.key_counts else 0)
            if n > self.max_record:
                self.lost += 1
                self.last_error = f"record of {n} bytes is over the {self.max_record}-byte limit"
                continue
            if batch and (len(batch) >= self.max_records or size + n > self.max_bytes):
                await self._send(batch)
                batch, size = [], 0
            batch.append(item)
            size += n
        if batch:
            await self._send(batch)

    async def _send(self, items: list[tuple[bytes, str]]) -> None:
        """Write ``items``; retry what failed (whole calls that may go through, records
        the service reported failed), with the AWS retry policy. Delivery is at least
        once: a call whose answer was lost is sent again."""
        pending = items
        retrying = aws_retrying(attempts=self.attempts, base=self.backoff,
                                max_wait=self.backoff_max, idempotent=True,
                                extra=lambda exc: isinstance(exc, _Retry))  # fmt: skip
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        pending = await self._attempt(pending)
                    except _Retry as exc:
                        pending = exc.items  # only what failed goes again
                        raise
        except _Retry as exc:
            self.lost += len(exc.items)
            self.last_error = exc.reason
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            if fault.kind in ("credentials", "rejected"):
                raise EventStreamError(str(fault), destination=self.arn) from exc
            self.lost += len(pending)
            self.last_error = str(fault)

    async def _attempt(self, items: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        client = await self._client()
        self.calls += 1
        codes = await self._put(client, items)
        failed = [item for item, code in zip(items, codes, strict=True) if code is not None]
        self.written += len(items) - len(failed)
        if failed:
            codes_seen = sorted({c for c in codes if c is not None})
            raise _Retry(failed, f"{len(failed)} record(s) failed: {', '.join(codes_seen)}")
        return []

    async def aclose(self) -> None:
        """Nothing to release: the clients belong to the run's ``AwsClients``."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.arn!r}, written={self.written}, lost={self.lost}, "
                f"calls={self.calls})")  # fmt: skip


class FirehoseSink(_AwsSink):
    """Amazon Data Firehose ``PutRecordBatch``: newline-terminated JSON records."""

    service = "firehose"
    max_records = FIREHOSE_MAX_RECORDS
    max_bytes = FIREHOSE_MAX_BYTES
    max_record = FIREHOSE_MAX_RECORD

    def _encode(self, record: dict[str, Any]) -> tuple[bytes, str]:
        return orjson.dumps(record) + b"\n", ""

    async def _describe(self, client: Any) -> None:
        await client.describe_delivery_stream(DeliveryStreamName=self.name, Limit=1)

    async def _put(self, client: Any, items: list[tuple[bytes, str]]) -> list[str | None]:
        response = await client.put_record_batch(
            DeliveryStreamName=self.name, Records=[{"Data": data} for data, _ in items]
        )
        if not response.get("FailedPutCount"):
            return [None] * len(items)
        return [r.get("ErrorCode") or None for r in response["RequestResponses"]]


_MAX_PARTITION_KEY = 256


class KinesisSink(_AwsSink):
    """Kinesis Data Streams ``PutRecords``: one JSON record each, keyed by endpoint id."""

    service = "kinesis"
    max_records = KINESIS_MAX_RECORDS
    max_bytes = KINESIS_MAX_BYTES
    max_record = KINESIS_MAX_RECORD
    key_counts = True

    def _encode(self, record: dict[str, Any]) -> tuple[bytes, str]:
        key = str(record.get("client", {}).get("client_id") or "-")
        if len(key) > _MAX_PARTITION_KEY:
            key = hashlib.blake2b(key.encode(), digest_size=32).hexdigest()
        return orjson.dumps(record), key

    async def _describe(self, client: Any) -> None:
        await client.describe_stream_summary(StreamARN=self.arn)

    async def _put(self, client: Any, items: list[tuple[bytes, str]]) -> list[str | None]:
        response = await client.put_records(
            StreamARN=self.arn,
            Records=[{"Data": data, "PartitionKey": key} for data, key in items],
        )
        if not response.get("FailedRecordCount"):
            return [None] * len(items)
        return [r.get("ErrorCode") or None for r in response["Records"]]
