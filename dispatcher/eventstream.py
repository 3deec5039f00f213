"""Outcomes as Pinpoint event-stream ``_campaign.send`` records, and where they go.

Record shape: the published "Campaign event example" of the Pinpoint Developer Guide
(event-streams-data-campaign), field for field::

    {"event_type": "_campaign.send", "event_timestamp": <ms>, "arrival_timestamp": <ms>,
     "event_version": "3.1", "application": {"app_id": ..., "sdk": {}},
     "client": {"client_id": <endpoint id>}, "device": {"platform": {}}, "session": {},
     "attributes": {"treatment_id", "campaign_activity_id", "delivery_type", "campaign_id",
                    "campaign_send_status"},
     "client_context": {"custom": {"endpoint": "<the endpoint record as a JSON string>"}},
     "awsAccountId": ...}

Additions: ``attributes.dispatcher_status`` (our exact ``Status``) and, when there is
one, ``attributes.dispatcher_reason``. ``treatment_id`` is left out for HOLDOUT endpoints
(no treatment). ``delivery_type`` is the endpoint's ChannelType, or ``CUSTOM`` when the
campaign delivers that ChannelType through a CustomDeliveryConfiguration. A record
without an endpoint id (an unreadable segment line) has no ``client_id`` and is not
streamed. ``campaign_send_status`` values are in ``SEND_STATUS``.

Sinks, behind one small async interface (``EventSink``):

* ``JsonLinesSink``: one JSON object per line in a local file (appended to).
* ``FirehoseSink``: Amazon Data Firehose ``PutRecordBatch``; each record is one JSON
  object *plus a newline*, so the objects Firehose writes to S3 are JSON lines (Pinpoint
  itself wrote no separator, which broke line-based readers).
* ``KinesisSink``: Kinesis Data Streams ``PutRecords``; one JSON object per record,
  partition key = endpoint id.

Both AWS sinks split writes at the service's limits (500 records and 4 MiB / 5 MiB per
call), retry the records a call reports as failed (``RequestResponses[i].ErrorCode`` /
``Records[i].ErrorCode``) and whole calls that fail transiently (throttling, 5xx, lost
connections), with jittered exponential backoff, ``attempts`` times in all. Delivery is
at least once: a call whose answer was lost is sent again. Records still failing after
the last attempt, or too large for one record, are counted in ``lost``; a call the
service refuses for good (the stream is gone, access denied) raises
``EventStreamError``. ``open()`` checks the destination exists before the run starts.

Config, ``[event_stream]`` (Pinpoint's EventStream resource names, plus our own)::

    DestinationStreamArn = "arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME"
                        # or "arn:aws:kinesis:REGION:ACCOUNT:stream/NAME"
    path = "events.jsonl"     # instead: a JSON-lines file, relative to the run's out dir
    endpoint_url = "..."      # optional, for the AWS sinks

``RoleArn``, ``ApplicationId``, ``ExternalId``, ``LastModifiedDate`` and
``LastUpdatedBy`` (get-event-stream output) are accepted and ignored: the dispatcher
writes with its own credentials.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import aiohttp
import anyio
import orjson
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, EventStreamError
from dispatcher.model import Definition, Outcome, Status

__all__ = [
    "EVENT_TYPE",
    "EVENT_VERSION",
    "INVENTED_STATUSES",
    "SEND_STATUS",
    "EventSink",
    "EventStream",
    "EventStreamError",
    "FirehoseSink",
    "JsonLinesSink",
    "KinesisSink",
    "create_sink",
    "to_record",
]

EVENT_TYPE = "_campaign.send"
EVENT_VERSION = "3.1"

SEND_STATUS: Mapping[Status, str] = {
    Status.SUCCESS: "SUCCESS",
    Status.THROTTLED: "THROTTLED",
    Status.HOLDOUT: "HOLDOUT",
    Status.QUIET_TIME: "QUIET_TIME",
    Status.DAILY_CAP: "DAILY_CAP",
    Status.TOTAL_CAP: "TOTAL_CAP",
    Status.EXPIRED: "EXPIRED",
    Status.DUPLICATE_ADDRESS: "DUPLICATE_ADDRESS",
    Status.OPT_OUT: "OPT_OUT",
    Status.TEMPORARY_FAILURE: "FAILURE",
    Status.PERMANENT_FAILURE: "FAILURE",
    Status.HOOK_FAILURE: "FAILURE",
    Status.INVALID: "FAILURE",
    Status.FILTERED: "FILTERED",
    Status.INACTIVE: "INACTIVE",
    Status.UNSUPPORTED_CHANNEL: "UNSUPPORTED_CHANNEL",
}
"""``Status`` -> ``campaign_send_status``. Failures of every kind are Pinpoint's FAILURE
(``dispatcher_status`` keeps the detail)."""

INVENTED_STATUSES = frozenset({"FILTERED", "INACTIVE", "UNSUPPORTED_CHANNEL"})
"""``campaign_send_status`` values that are ours, not Pinpoint's: Pinpoint sent no event
for these endpoints (it never targeted them)."""

FIREHOSE_MAX_RECORDS = 500
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024
FIREHOSE_MAX_RECORD = 1000 * 1024
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD = 1024 * 1024
"""Per-call and per-record limits (Kinesis counts the partition key too)."""

TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailableException", "ServiceUnavailable", "InternalFailure",
        "InternalFailureException", "InternalServerError", "InternalError",
        "ProvisionedThroughputExceededException", "KMSThrottlingException",
        "LimitExceededException", "ThrottlingException", "Throttling", "ThrottledException",
        "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "RequestTimeout",
        "RequestTimeoutException",
    }
)  # fmt: skip
"""Error codes worth another attempt, whatever the HTTP status (5xx always is)."""


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def _endpoint_json(definition: Definition | None) -> str:
    if not definition:
        return "{}"
    if "Id" in definition:  # the id is client_id; Pinpoint's example record has no Id
        definition = {k: v for k, v in definition.items() if k != "Id"}
    try:
        return orjson.dumps(definition).decode()
    except TypeError:  # not JSON-serializable (a hook returned odd values); keep the event
        return orjson.dumps(definition, default=str).decode()


def to_record(
    outcome: Outcome,
    definition: Definition | None,
    *,
    application_id: str,
    campaign_id: str,
    activity_id: str,
    account_id: str,
    timestamp_ms: int,
    arrival_ms: int | None = None,
    delivery_type: str | None = None,
) -> dict[str, Any]:
    """One outcome as a ``_campaign.send`` event-stream record.

    ``definition`` is the endpoint record as it was last known (after the hook, if it
    ran); ``delivery_type`` overrides the ChannelType (``CUSTOM`` for custom delivery).
    """
    channel = delivery_type or outcome.channel_type
    if channel is None and definition is not None:
        ct = definition.get("ChannelType")
        channel = ct if isinstance(ct, str) else None
    attributes: dict[str, str] = {}
    if outcome.treatment_id is not None:
        attributes["treatment_id"] = outcome.treatment_id
    attributes["campaign_activity_id"] = activity_id
    if channel is not None:
        attributes["delivery_type"] = channel
    attributes["campaign_id"] = campaign_id
    attributes["campaign_send_status"] = SEND_STATUS.get(outcome.status, outcome.status.value)
    attributes["dispatcher_status"] = outcome.status.value
    if outcome.reason:
        attributes["dispatcher_reason"] = outcome.reason
    return {
        "event_type": EVENT_TYPE,
        "event_timestamp": timestamp_ms,
        "arrival_timestamp": timestamp_ms if arrival_ms is None else arrival_ms,
        "event_version": EVENT_VERSION,
        "application": {"app_id": application_id, "sdk": {}},
        "client": {"client_id": outcome.endpoint_id},
        "device": {"platform": {}},
        "session": {},
        "attributes": attributes,
        "client_context": {"custom": {"endpoint": _endpoint_json(definition)}},
        "awsAccountId": account_id,
    }


# --------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------


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
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"{self.arn} does not exist (or is in another region/account)",
                    file=self.config_file,
                    key="event_stream.DestinationStreamArn",
                ) from None
            # Describe may simply not be granted; the writes themselves will tell.
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise EventStreamError(str(exc), destination=self.arn) from exc
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise EventStreamError(
                f"cannot reach the service: {type(exc).__name__}: {exc}", destination=self.arn
            ) from exc

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
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.backoff_max),
            retry=retry_if_exception_type(_Retry),
            sleep=anyio.sleep,
            reraise=True,
        )
        pending = items
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

    async def _attempt(self, items: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        client = await self._client()
        self.calls += 1
        try:
            codes = await self._put(client, items)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            reason = f"{code}: {error.get('Message', '')}"
            if code in TRANSIENT_CODES or status >= 500:
                raise _Retry(items, reason) from exc
            raise EventStreamError(reason, destination=self.arn) from exc
        except (NoCredentialsError, PartialCredentialsError, ParamValidationError) as exc:
            raise EventStreamError(str(exc), destination=self.arn) from exc
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
            # Connection lost or timed out: the records may have arrived; send again
            # (at least once).
            raise _Retry(items, f"{type(exc).__name__}: {exc}") from exc
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


# --------------------------------------------------------------------------------------
# The publisher
# --------------------------------------------------------------------------------------


class EventStream:
    """Turns outcomes into records and writes them in batches through one sink.

    ``publish`` buffers; it writes (and so waits: backpressure) once ``batch_size``
    records are buffered or the oldest has waited ``max_delay`` seconds. Concurrent
    publishers share one buffer; one write runs at a time. ``aclose`` writes the rest
    and closes the sink.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        application_id: str,
        campaign_id: str,
        activity_id: str,
        account_id: str,
        custom_endpoint_types: Collection[str] = (),
        batch_size: int = 500,
        max_delay: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be >= 1, got {batch_size}")
        self.sink = sink
        self.application_id = application_id
        self.campaign_id = campaign_id
        self.activity_id = activity_id
        self.account_id = account_id
        self.custom = frozenset(custom_endpoint_types)
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.skipped = 0
        self._buffer: list[dict[str, Any]] = []
        self._since = 0.0
        self._lock = anyio.Lock()

    async def publish(self, items: Iterable[tuple[Outcome, Definition | None]]) -> None:
        """Add outcomes (each with the endpoint definition as last known)."""
        now_ms = time.time_ns() // 1_000_000
        buffer = self._buffer
        was_empty = not buffer
        for outcome, definition in items:
            if outcome.endpoint_id is None:
                self.skipped += 1
                continue
            channel = outcome.channel_type
            delivery = "CUSTOM" if channel is not None and channel in self.custom else None
            buffer.append(
                to_record(
                    outcome, definition,
                    application_id=self.application_id, campaign_id=self.campaign_id,
                    activity_id=self.activity_id, account_id=self.account_id,
                    timestamp_ms=now_ms, delivery_type=delivery,
                )
            )  # fmt: skip
        if not buffer:
            return
        if was_empty:
            self._since = time.monotonic()
        if len(buffer) >= self.batch_size or time.monotonic() - self._since >= self.max_delay:
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered."""
        async with self._lock:
            while self._buffer:
                batch, self._buffer = self._buffer, []
                await self.sink.write(batch)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.flush()
            finally:
                await self.sink.aclose()

    def __repr__(self) -> str:
        return (f"EventStream({self.sink!r}, buffered={len(self._buffer)}, "
                f"skipped={self.skipped})")  # fmt: skip


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------

EVENT_STREAM_KEYS = frozenset(
    {"DestinationStreamArn", "RoleArn", "ApplicationId", "ExternalId", "LastModifiedDate",
     "LastUpdatedBy", "path", "endpoint_url"}
)  # fmt: skip

_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):(?P<service>firehose|kinesis):"
    r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):(?P<account>\d{12}):"
    r"(?P<kind>deliverystream|stream)/(?P<name>[a-zA-Z0-9_.-]{1,128})$"
)


def create_sink(
    table: Mapping[str, Any],
    *,
    clients: AwsClients,
    out_dir: Path,
    file: str | None = None,
    attempts: int = 5,
) -> EventSink:
    """The sink an ``[event_stream]`` table describes; errors name ``event_stream.<key>``."""

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, key=f"event_stream.{key}")

    for key in table:
        if key not in EVENT_STREAM_KEYS:
            raise error(key, f"unknown key; use one of {', '.join(sorted(EVENT_STREAM_KEYS))}")
    for key in ("DestinationStreamArn", "path", "endpoint_url", "RoleArn"):
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise error(key, f"expected a string, got {type(value).__name__}")
    arn = table.get("DestinationStreamArn") or None
    path = table.get("path") or None
    if arn and path:
        raise error("path", "give DestinationStreamArn or path, not both")
    if path:
        if table.get("endpoint_url"):
            raise error("endpoint_url", "only applies to DestinationStreamArn")
        p = Path(path).expanduser()
        return JsonLinesSink(p if p.is_absolute() else out_dir / p, file=file)
    if not arn:
        raise error("DestinationStreamArn", "give DestinationStreamArn (a Firehose delivery "
                    "stream or Kinesis stream ARN) or path (a JSON-lines file)")  # fmt: skip
    m = _ARN.match(arn)
    if m is None or (m["service"], m["kind"]) not in (
        ("firehose", "deliverystream"),
        ("kinesis", "stream"),
    ):
        raise error(
            "DestinationStreamArn",
            f"expected arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME or "
            f"arn:aws:kinesis:REGION:ACCOUNT:stream/NAME, got {arn!r}",
        )
    if m["service"] == "firehose" and len(m["name"]) > 64:
        raise error("DestinationStreamArn", "a delivery stream name has at most 64 characters")
    cls: type[_AwsSink] = FirehoseSink if m["service"] == "firehose" else KinesisSink
    return cls(
        clients, arn=arn, region=m["region"], name=m["name"],
        endpoint_url=table.get("endpoint_url") or None, attempts=attempts, config_file=file,
    )  # fmt: skip
