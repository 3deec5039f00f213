"""The FILTER return value: a map of endpoint id -> endpoint definition, and nothing else.

Pinpoint "only accepts endpoint definitions in the function's return value". Ids the
chunk did not contain are ignored (a hook can never add recipients) and counted.
Non-string scalars in attribute lists (the seed example's ``CreditScore`` number) are
made strings; anything else that is not the endpoints map fails the whole chunk.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dispatcher.errors import HookResultError
from dispatcher.model import Definition

_EVENT_KEYS = frozenset(
    {"MessageConfiguration", "ApplicationId", "CampaignId", "TreatmentId", "ActivityId",
     "ScheduledTime", "Endpoints", "Message"}
)  # fmt: skip


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _scalar(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    raise HookResultError(f"{where} holds {_json_type(value)}; attribute values must be strings")


def _attribute_map(value: object, where: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise HookResultError(f"{where} is {_json_type(value)}, expected an object of string lists")
    # Fast path: hooks mostly return string lists untouched; check before rebuilding.
    for values in value.values():
        if type(values) is not list or any(type(v) is not str for v in values):
            break
    else:
        return value
    out: dict[str, list[str]] = {}
    for name, values in value.items():
        if isinstance(values, list):
            out[name] = [_scalar(v, f"{where}.{name}") for v in values if v is not None]
        elif values is not None:
            out[name] = [_scalar(values, f"{where}.{name}")]
    return out


def normalize(endpoint_id: str, definition: Definition) -> Definition:
    """Validate one returned definition and stringify attribute scalars in place."""
    where = f"endpoint {endpoint_id!r}"
    attrs = definition.get("Attributes")
    if attrs is not None:
        definition["Attributes"] = _attribute_map(attrs, f"{where} Attributes")
    user = definition.get("User")
    if user is not None:
        if not isinstance(user, dict):
            raise HookResultError(f"{where} User is {_json_type(user)}, expected an object")
        ua = user.get("UserAttributes")
        if ua is not None:
            user["UserAttributes"] = _attribute_map(ua, f"{where} User.UserAttributes")
    for key in ("Demographic", "Location", "Metrics"):
        value = definition.get(key)
        if value is not None and not isinstance(value, dict):
            raise HookResultError(f"{where} {key} is {_json_type(value)}, expected an object")
    return definition


def filter_result(result: Any, chunk_ids: Collection[str]) -> tuple[dict[str, Definition], int]:
    """Return the accepted definitions by id and how many returned ids were ignored."""
    if not isinstance(result, dict):
        raise HookResultError(
            f"hook returned {_json_type(result)}; expected a map of endpoint id to definition"
        )
    if "Endpoints" in result and "Endpoints" not in chunk_ids and result.keys() <= _EVENT_KEYS:
        raise HookResultError("hook returned the whole event; return event.Endpoints instead")
    accepted: dict[str, Definition] = {}
    ignored = 0
    for endpoint_id, definition in result.items():
        if endpoint_id not in chunk_ids:
            ignored += 1
            continue
        if not isinstance(definition, dict):
            raise HookResultError(
                f"definition of endpoint {endpoint_id!r} is {_json_type(definition)}, "
                "expected an object"
            )
        accepted[endpoint_id] = normalize(endpoint_id, definition)
    return accepted, ignored
