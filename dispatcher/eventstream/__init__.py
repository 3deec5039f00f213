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

import re
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, EventStreamError
from dispatcher.eventstream.records import (
    EVENT_TYPE,
    EVENT_VERSION,
    INVENTED_STATUSES,
    SEND_STATUS,
    to_record,
)
from dispatcher.eventstream.sinks import (
    FIREHOSE_MAX_BYTES,
    FIREHOSE_MAX_RECORD,
    FIREHOSE_MAX_RECORDS,
    KINESIS_MAX_BYTES,
    KINESIS_MAX_RECORD,
    KINESIS_MAX_RECORDS,
    EventSink,
    FirehoseSink,
    JsonLinesSink,
    KinesisSink,
    _AwsSink,
)
from dispatcher.model import Definition, Outcome

__all__ = [
    "EVENT_TYPE",
    "EVENT_VERSION",
    "FIREHOSE_MAX_BYTES",
    "FIREHOSE_MAX_RECORD",
    "FIREHOSE_MAX_RECORDS",
    "INVENTED_STATUSES",
    "KINESIS_MAX_BYTES",
    "KINESIS_MAX_RECORD",
    "KINESIS_MAX_RECORDS",
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
