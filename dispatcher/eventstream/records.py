"""Outcomes as Pinpoint ``_campaign.send`` event-stream records (see the package doc)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dispatcher.model import Definition, Outcome, Status

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
    Status.NO_TIMEZONE: "NO_TIMEZONE",
}
"""``Status`` -> ``campaign_send_status``. Failures of every kind are Pinpoint's FAILURE
(``dispatcher_status`` keeps the detail)."""

INVENTED_STATUSES = frozenset({"FILTERED", "INACTIVE", "UNSUPPORTED_CHANNEL", "NO_TIMEZONE"})
"""``campaign_send_status`` values that are ours, not Pinpoint's: Pinpoint sent no event
for these endpoints (it never targeted them)."""


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
