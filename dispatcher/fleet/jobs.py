"""A shard job: what ``dispatcher submit`` puts on the queue and a worker takes off it.

One SQS message per shard, JSON::

    {"Type": "dispatcher.shard/2", "RunId": "...", "Shard": {...Shard.to_json()...},
     "Shards": 12, "Config": {"Path": "/abs/campaign.toml", "Data": {...}},
     "Ledger": {"Table": "dispatcher-ledger", "Region": "us-east-1"},
     "Output": "s3://bucket/runs/RUN_ID/",
     "Duplicates": "eNrt...", "SharedIds": "eNrt...", "Outside": "eNrt..."}

``Duplicates`` and ``SharedIds`` are what submit learnt by reading the whole segment in
order: the shard's lines that are DUPLICATE_ADDRESS (an earlier line, in any shard, has
the same ChannelType and Address and was accepted), and its lines whose endpoint id
another line also has (those are claimed by endpoint id; the rest by line). Each is a
bitmap over the shard's lines, zlib-compressed and base64-encoded, left out when empty.
``Outside`` (a run with a segment definition) marks the shard's lines outside the
segment: the worker passes over them, as ``dispatcher run`` does, and they get no
outcome. Format 2 of the job, or 3 when it has ``Outside``: a worker that predates
segment definitions refuses format 3 rather than send to the whole export. A worker
refuses format 1 (jobs of an older ``submit``, whose workers claimed addresses in the
ledger instead).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.errors import ConfigError, DispatchError, SegmentError
from dispatcher.segments.shards import Shard

JOB_TYPE = "dispatcher.shard/2"
JOB_TYPE_SEGMENT = "dispatcher.shard/3"
"""A job with lines outside the segment (``Outside``)."""
MAX_MESSAGE = 256 * 1024
"""SQS's message size limit."""


@dataclass(frozen=True, slots=True)
class LineBits:
    """A set of lines of one shard: a bitmap whose bit 0 is line ``first``."""

    first: int = 1
    bits: bytes = b""

    @classmethod
    def of(cls, first: int, lines: Iterable[int]) -> LineBits:
        bits = bytearray()
        for line in lines:
            i = line - first
            if i < 0:
                raise ValueError(f"line {line} is before the shard's first line {first}")
            if i >> 3 >= len(bits):
                bits.extend(bytes((i >> 3) + 1 - len(bits)))
            bits[i >> 3] |= 1 << (i & 7)
        return cls(first, bytes(bits))

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int):
            return False
        i = line - self.first
        return 0 <= i and i >> 3 < len(self.bits) and bool(self.bits[i >> 3] >> (i & 7) & 1)

    def __len__(self) -> int:
        return sum(byte.bit_count() for byte in self.bits)

    def lines(self) -> list[int]:
        return [
            self.first + i for i in range(len(self.bits) * 8) if self.bits[i >> 3] >> (i & 7) & 1
        ]

    def encode(self) -> str | None:
        """Compressed and base64-encoded; None when empty."""
        if not any(self.bits):
            return None
        return base64.b64encode(zlib.compress(self.bits, 9)).decode("ascii")

    @classmethod
    def decode(cls, first: int, text: object) -> LineBits:
        if text is None:
            return cls(first)
        if not isinstance(text, str):
            raise TypeError("a line set must be a base64 string")
        return cls(first, zlib.decompress(base64.b64decode(text, validate=True)))


@dataclass(frozen=True, slots=True)
class ShardJob:
    """One shard of a fleet run, with everything a worker needs to run it alone."""

    run_id: str
    shard: Shard
    shards: int
    """How many shards the run has (the worker that finishes the last writes the summary)."""
    config_path: str
    config_data: dict[str, Any]
    table: str
    region: str
    output: str
    """The run's S3 prefix: ``outcomes/shard-NNNNNN.jsonl`` and ``summary.json`` go there."""
    duplicates: LineBits = field(default_factory=LineBits)
    shared_ids: LineBits = field(default_factory=LineBits)
    outside: LineBits = field(default_factory=LineBits)
    """Lines outside the run's segment definition: no outcome, never sent."""

    @property
    def lines(self) -> tuple[int, int]:
        """The shard's line range, inclusive."""
        return self.shard.first_line, self.shard.last_line

    def output_url(self, name: str) -> str:
        return f"{self.output.rstrip('/')}/{name}"

    def to_message(self) -> bytes:
        """The SQS message body; ``ConfigError`` if it would not fit a message."""
        body: dict[str, Any] = {
            "Type": JOB_TYPE_SEGMENT if any(self.outside.bits) else JOB_TYPE,
            "RunId": self.run_id,
            "Shards": self.shards,
            "Config": {"Path": self.config_path, "Data": self.config_data},
            "Ledger": {"Table": self.table, "Region": self.region},
            "Output": self.output,
            "Shard": self.shard.to_json(),
        }
        for name, lines in (("Duplicates", self.duplicates), ("SharedIds", self.shared_ids),
                            ("Outside", self.outside)):
            encoded = lines.encode()
            if encoded is not None:
                body[name] = encoded
        message = orjson.dumps(body)
        if len(message) > MAX_MESSAGE:
            raise ConfigError(
                f"a shard job is {len(message)} bytes, over SQS's {MAX_MESSAGE}-byte limit; "
                "the config is too large to travel with each job (or use a smaller "
                "--shard-size)"
            )
        return message

    @classmethod
    def from_message(cls, body: str | bytes, *, message_id: str = "") -> ShardJob:
        """Read a message body back; ``DispatchError`` if it is not a shard job."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, Mapping) or not str(data.get("Type", "")).startswith(
            "dispatcher.shard/"
        ):
            raise DispatchError(f"message {message_id} is not a shard job")
        if data["Type"] not in (JOB_TYPE, JOB_TYPE_SEGMENT):
            raise DispatchError(
                f"message {message_id} is a {data['Type']} job; this worker runs {JOB_TYPE} "
                "jobs (submit the run again with this version)"
            )
        try:
            shard = Shard.from_json(data["Shard"])
            config, ledger = data["Config"], data["Ledger"]
            return cls(
                run_id=_text(data["RunId"]),
                shard=shard,
                shards=int(data["Shards"]),
                config_path=_text(config["Path"]),
                config_data=dict(config["Data"]),
                table=_text(ledger["Table"]),
                region=_text(ledger["Region"]),
                output=_text(data["Output"]),
                duplicates=LineBits.decode(shard.first_line, data.get("Duplicates")),
                shared_ids=LineBits.decode(shard.first_line, data.get("SharedIds")),
                # Absent: none outside (the field's default, so a job reads back equal).
                outside=(LineBits.decode(shard.first_line, data["Outside"]) if "Outside" in data
                         else LineBits()),
            )
        except (KeyError, TypeError, ValueError, binascii.Error, zlib.error, SegmentError) as exc:
            raise DispatchError(f"message {message_id} is a malformed shard job: {exc!r}") from exc


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Delivery:
    """One receipt of a job message from SQS."""

    message_id: str
    receipt: str
    receive_count: int
    body: str

    @classmethod
    def of(cls, message: Mapping[str, Any]) -> Delivery:
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        return cls(message["MessageId"], message["ReceiptHandle"], count, message.get("Body", ""))

    def job(self) -> ShardJob:
        return ShardJob.from_message(self.body, message_id=self.message_id)
