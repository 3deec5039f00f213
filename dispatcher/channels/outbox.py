"""The ``outbox`` channel: every message appended to ``DIR/outbox.jsonl``.

The default sender for every channel, for demos, dry runs and tests. It appends and
never truncates, and flushes each batch before reporting it sent, so after a crash the
file is the exact record of what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dispatcher.channels.base import Message, SendResult, SenderContext
from dispatcher.errors import ConfigError

FILE_NAME = "outbox.jsonl"


class OutboxSender:
    """Appends one JSON line per message: EndpointId, ChannelType, Address, Title, Body."""

    max_batch = 100

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("ab")

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        lines = []
        for m in messages:
            line: dict[str, Any] = {
                "EndpointId": m.endpoint_id,
                "ChannelType": m.channel_type,
                "Address": m.address,
                "Title": m.title,
                "Body": m.body,
            }
            if m.html_body is not None:
                line["HtmlBody"] = m.html_body
            if m.treatment_id != "0":
                line["TreatmentId"] = m.treatment_id
            lines.append(orjson.dumps(line))
        self._file.write(b"\n".join(lines) + b"\n")
        self._file.flush()
        return [SendResult.ok() for _ in messages]

    def sent_ids(self) -> set[str]:
        """Endpoint ids already in the file (resume reconciles with it)."""
        self._file.flush()
        ids = set()
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    ids.add(orjson.loads(raw)["EndpointId"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a line torn by a crash was never reported as sent
        return ids

    async def aclose(self) -> None:
        self._file.close()




def create(channel: str, options: Mapping[str, Any], ctx: SenderContext) -> OutboxSender:
    """One outbox file per output directory, shared by every channel that uses it."""
    for key in options:
        raise ConfigError("the outbox sender takes no options", file=ctx.config_file,
                          key=f"channels.{channel}.{key}")
    return OutboxSender(Path(ctx.out_dir) / FILE_NAME)
