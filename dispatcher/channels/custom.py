"""The custom channel: ``CustomDeliveryConfiguration.DeliveryUri``, a Lambda function or
an https webhook, invoked with Pinpoint's custom-channel payload for up to 50 endpoints.

Payload (as Pinpoint documented it): ``Message`` ({}), ``Data`` (the campaign's
``CustomMessage.Data``), ``ApplicationId``, ``CampaignId``, ``TreatmentId``,
``ActivityId``, ``ScheduledTime`` and ``Endpoints`` (endpoint id -> definition).
A successful invocation delivers all of its endpoints; the return value is not used.

Retries: the call is one attempt. Only a refusal that proves the function did not run
(HTTP 429) is retried; a function error, a time-out or a 5xx may have delivered part of
the batch, so those end TEMPORARY_FAILURE without a retry (no duplicates), and 4xx
answers (function not found, access denied) end PERMANENT_FAILURE with the error code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import orjson

from dispatcher.channels.base import Message, SendResult
from dispatcher.errors import HookAttemptError, HookError, HookResultError
from dispatcher.hooks.base import HookTransport
from dispatcher.model import Status

MAX_ENDPOINTS = 50


class CustomSender:
    """Delivers batches of endpoints to a custom channel function."""

    max_batch = MAX_ENDPOINTS

    def __init__(
        self,
        transport: HookTransport,
        *,
        data: str | None,
        application_id: str,
        campaign_id: str,
        activity_id: str,
        scheduled_time: str,
        timeout: float = 15.0,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self._common: dict[str, Any] = {
            "Message": {},
            "Data": data,
            "ApplicationId": application_id,
            "CampaignId": campaign_id,
            "ActivityId": activity_id,
            "ScheduledTime": scheduled_time,
        }

    def payload(self, messages: Sequence[Message]) -> bytes:
        return orjson.dumps({
            **self._common,
            "TreatmentId": messages[0].treatment_id if messages else "0",
            "Endpoints": {m.endpoint_id: m.definition for m in messages},
        })  # fmt: skip

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        # One call per treatment: the payload carries a single TreatmentId.
        by_treatment: dict[str, list[Message]] = {}
        for m in messages:
            by_treatment.setdefault(m.treatment_id, []).append(m)
        outcome: dict[str, SendResult] = {}
        for group in by_treatment.values():
            result = await self._call(group)
            outcome.update((m.endpoint_id, result) for m in group)
        results.extend(outcome[m.endpoint_id] for m in messages)
        return results

    async def _call(self, messages: Sequence[Message]) -> SendResult:
        name = self.transport.name
        try:
            with anyio.fail_after(self.timeout):
                await self.transport.invoke(self.payload(messages))
        except HookResultError:
            return SendResult.ok()  # it ran and returned; its return value is not used
        except HookAttemptError as exc:
            if exc.throttled:
                return SendResult(
                    Status.THROTTLED,
                    f"{name}: {exc.reason}",
                    retryable=True,
                    retry_after=exc.retry_after,
                )
            if not exc.retryable:
                return SendResult(Status.PERMANENT_FAILURE, f"{name}: {exc.reason}")
            return SendResult(
                Status.TEMPORARY_FAILURE,
                f"{name}: {exc.reason}; not retried, it may have delivered",
            )
        except HookError as exc:
            return SendResult(Status.TEMPORARY_FAILURE, f"{name}: {exc.reason}")
        except TimeoutError:
            return SendResult(
                Status.TEMPORARY_FAILURE,
                f"{name}: no answer within {self.timeout:g} s; not retried, it may have delivered",
            )
        return SendResult.ok()

    async def aclose(self) -> None:
        await self.transport.aclose()
