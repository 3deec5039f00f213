"""The hook event, exactly as Pinpoint sent it, and its ``MessageConfiguration``.

The event's ``MessageConfiguration`` has the DirectMessageConfiguration shape, while a
campaign stores CampaignEmailMessage / CampaignSmsMessage / Message objects. Pinpoint
never documented the conversion; this is the natural one (field renames only):
EmailMessage.Title/HtmlBody/Body become SimpleEmail Subject/HtmlPart/TextPart, push
``ImageSmallIconUrl`` becomes ``SmallImageIconUrl`` and ``JsonBody`` becomes ``Data``
(the custom data of the notification); other fields are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dispatcher.chunking import Chunk
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD
from dispatcher.model import Record

_PUSH_KEYS = ("DefaultMessage", "GCMMessage", "APNSMessage", "ADMMessage", "BaiduMessage")
_PUSH_RENAMES = {"ImageSmallIconUrl": "SmallImageIconUrl"}


def _push(message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in message.items():
        if key == "JsonBody":
            try:
                data = orjson.loads(value) if isinstance(value, str) else value
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                out["Data"] = {
                    k: v if isinstance(v, str) else orjson.dumps(v).decode()
                    for k, v in data.items()
                }
            continue
        out[_PUSH_RENAMES.get(key, key)] = value
    return out


def _email(message: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in ("Title", "HtmlBody", "Body")}
    simple: dict[str, Any] = {}
    if message.get("Title") is not None:
        simple["Subject"] = {"Charset": "UTF-8", "Data": message["Title"]}
    if message.get("HtmlBody") is not None:
        simple["HtmlPart"] = {"Charset": "UTF-8", "Data": message["HtmlBody"]}
    if message.get("Body") is not None:
        simple["TextPart"] = {"Charset": "UTF-8", "Data": message["Body"]}
        out["Body"] = message["Body"]
    if simple:
        out["SimpleEmail"] = simple
    return out


def direct_configuration(campaign_mc: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign MessageConfiguration in DirectMessageConfiguration shape.

    A template's ``DefaultSubstitutions`` (merged into the messages) stay out: the event
    carries the content, as the campaign would have sent it.
    """
    out: dict[str, Any] = {}
    for key, message in campaign_mc.items():
        message = {k: v for k, v in message.items() if k != "DefaultSubstitutions"}
        if key in _PUSH_KEYS:
            out[key] = _push(message)
        elif key == "EmailMessage":
            out[key] = _email(message)
        elif key in ("SMSMessage", "CustomMessage", "InAppMessage", "VoiceMessage"):
            out[key] = dict(message)
    return out


class EventBuilder:
    """Serializes chunks into hook events for one run."""

    def __init__(
        self,
        *,
        application_id: str,
        campaign_id: str,
        activity_id: str,
        scheduled_time: str,
        configurations: Mapping[str, Mapping[str, Any]],
        legacy_message: bool = False,
    ) -> None:
        self._common = {
            "ApplicationId": application_id,
            "CampaignId": campaign_id,
            "ActivityId": activity_id,
            "ScheduledTime": scheduled_time,
        }
        self._configurations = {t: direct_configuration(mc) for t, mc in configurations.items()}
        # The deprecated DELIVERY mode's own example read ``event.Message``.
        self._legacy = legacy_message

    def build(self, chunk: Chunk) -> bytes:
        return self._build(chunk.treatment, chunk.records)

    def _build(self, treatment: str, records: Mapping[str, Record]) -> bytes:
        mc = self._configurations[treatment]
        event: dict[str, Any] = {
            "MessageConfiguration": mc,
            **self._common,
            "TreatmentId": treatment,
            "Endpoints": {eid: r.definition for eid, r in records.items()},
        }
        if self._legacy:
            event["Message"] = mc
        return orjson.dumps(event)

    def fit(
        self, treatment: str, records: dict[str, Record], limit: int = MAX_SYNC_PAYLOAD
    ) -> tuple[list[tuple[dict[str, Record], bytes]], list[Record]]:
        """The events for ``records``, each within ``limit`` bytes, and the records that
        exceed it on their own.

        Nearly every chunk is one event (50 endpoints are ~200 KB). A chunk whose event
        would be over Lambda's 6 MiB payload limit is halved until each part fits, so a
        huge record fails alone (INVALID) and never its chunk-mates.
        """
        event = self._build(treatment, records)
        if len(event) <= limit:
            return [(records, event)], []
        if len(records) == 1:
            return [], list(records.values())
        items = list(records.items())
        half = len(items) // 2
        first, big_first = self.fit(treatment, dict(items[:half]), limit)
        second, big_second = self.fit(treatment, dict(items[half:]), limit)
        return first + second, big_first + big_second
