"""The preview sender of a dry run: every message written out, nothing sent.

``dispatcher run --dry-run`` routes every channel here instead of its real sender, so
the run does everything up to the provider call: reading, admission, the hook,
rendering. Each message becomes one JSON line (``EndpointId``, ``ChannelType``,
``Address``, ``Title``, ``Body``, ``HtmlBody``, and ``TreatmentId`` for A/B treatments)
in ``DIR/preview.jsonl``, or on stdout for ``dispatcher preview`` (which stops after
``limit`` messages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson

from dispatcher.channels.base import Message, SendResult
from dispatcher.errors import StorageError

PREVIEW_FILE = "preview.jsonl"


def preview_line(m: Message) -> dict[str, Any]:
    line: dict[str, Any] = {
        "EndpointId": m.endpoint_id,
        "ChannelType": m.channel_type,
        "Address": m.address,
        "Title": m.title,
        "Body": m.body,
        "HtmlBody": m.html_body,
    }
    if m.treatment_id != "0":
        line["TreatmentId"] = m.treatment_id
    return line


class PreviewSender:
    """Writes each message as a preview line; "sends" nothing, so every result is SUCCESS.

    ``limit``: after that many messages ``on_limit`` is called (the caller stops reading)
    and further messages are not written (nor counted as previewed).
    """

    max_batch = 100

    def __init__(
        self,
        stream: IO[bytes],
        *,
        name: str = PREVIEW_FILE,
        limit: int | None = None,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._name = name
        self._limit = limit
        self._on_limit = on_limit
        self.written = 0

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        take = list(messages)
        if self._limit is not None:
            take = take[: max(0, self._limit - self.written)]
        if take:
            data = b"".join(orjson.dumps(preview_line(m)) + b"\n" for m in take)
            try:
                self._stream.write(data)
                self._stream.flush()
            except OSError as exc:
                raise StorageError(f"cannot write {self._name}: {exc.strerror}",
                                   path=self._name) from None  # fmt: skip
            self.written += len(take)
        if self._limit is not None and self.written >= self._limit and self._on_limit:
            self._on_limit()
        return [SendResult.ok() for _ in messages]

    async def aclose(self) -> None:
        return None
