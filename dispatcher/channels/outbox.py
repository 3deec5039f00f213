"""The ``outbox`` channel: every message appended to ``DIR/outbox.jsonl``.

The default sender for every channel, for demos, dry runs and tests. It appends and
never truncates, and flushes each batch before reporting it sent, so after a crash the
file is the exact record of what was sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.errors import ConfigError, StorageError

FILE_NAME = "outbox.jsonl"


class OutboxSender:
    """Appends one JSON line per message: EndpointId, ChannelType, Address, Title, Body
    (HtmlBody for email, TreatmentId for A/B treatments) and the RunId."""

    max_batch = 100

    def __init__(self, path: Path, run_id: str = "") -> None:
        self.path = path
        self.run_id = run_id
        try:
            # Unbuffered: each batch is one write(2). A process killed during a write of
            # several pages leaves the batch cut at a page boundary: never reported sent,
            # its torn last line is closed below and skipped by ``sent_ids``.
            self._file = path.open("ab", buffering=0)
            if self._file.tell() > 0:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a line torn by a crash: close it, never truncate
                        self._file.write(b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}", path=str(path)) from None

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
            line["RunId"] = self.run_id
            lines.append(orjson.dumps(line))
        data = b"\n".join(lines) + b"\n"
        try:
            written = self._file.write(data)
        except OSError as exc:
            written, reason = None, exc.strerror
        else:
            reason = f"short write ({written} of {len(data)} bytes)"
        if written != len(data):
            # A full disk or a file size limit: stop the run. The lines that made it are
            # the record a resume reconciles with; a torn last line was never sent.
            raise StorageError(f"cannot write {self.path}: {reason}", path=str(self.path))
        return [SendResult.ok() for _ in messages]

    def sent_ids(self) -> dict[str, tuple[str, str]]:
        """Endpoint id -> (ChannelType, TreatmentId) of every message this run wrote.

        A resume reconciles sends left in doubt with this: the file is the record.
        """
        sent: dict[str, tuple[str, str]] = {}
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    line = orjson.loads(raw)
                    if line.get("RunId") != self.run_id:
                        continue
                    sent[line["EndpointId"]] = (line["ChannelType"], line.get("TreatmentId", "0"))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a line torn by a crash was never reported as sent
        return sent

    async def aclose(self) -> None:
        self._file.close()


def create(channel: str, options: Mapping[str, Any], ctx: SenderContext) -> OutboxSender:
    """One outbox file per output directory, shared by every channel that uses it."""
    for key in options:
        raise ConfigError(
            "the outbox sender takes no options",
            file=ctx.config_file,
            key=f"channels.{channel}.{key}",
        )
    return OutboxSender(Path(ctx.out_dir) / FILE_NAME, ctx.run_id)
