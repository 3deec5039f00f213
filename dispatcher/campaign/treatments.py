"""A/B treatments and holdout (``HoldoutPercent``, ``TreatmentName``, ``AdditionalTreatments``).

An endpoint's place is a bucket 0..9999 taken from a BLAKE2b hash of the campaign id
and the endpoint id: the same endpoint lands in the same place on every run, in every
process, on every machine (Python's ``hash()`` is salted per process and is never
used). Buckets are laid out as ``[holdout | treatment 1 | ... | treatment n | main]``:
the holdout takes ``HoldoutPercent`` % of the segment, each additional treatment its
``SizePercent`` % *of the whole segment*, and the main treatment (TreatmentId "0") the
rest, so ``HoldoutPercent + sum(SizePercent)`` may not exceed 100. TreatmentIds are
"1".."4" by position in ``AdditionalTreatments`` (Pinpoint allows four); a treatment's
own ``Id`` is accepted and ignored. A treatment without a ``MessageConfiguration``
inherits the campaign's; one with its own uses it *as a whole* (no message-by-message
merge) and must have a message for every channel the campaign sends. A treatment's
``Schedule`` is accepted and ignored (a run has one schedule, the campaign's). A
treatment's ``TemplateConfiguration`` is merged into its messages when the config is
read (``dispatcher.config.templates``).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.config.model import MESSAGE_KEYS, Campaign, Settings
from dispatcher.errors import ConfigError

__all__ = ["BUCKETS", "MAX_ADDITIONAL_TREATMENTS", "Treatment", "Treatments", "bucket"]


BUCKETS = 10_000
"""Assignment resolution: 0.01 % of the segment per bucket."""


MAX_ADDITIONAL_TREATMENTS = 4
"""Pinpoint allows up to four additional treatments (TreatmentIds "1".."4")."""


TREATMENT_KEYS = frozenset(
    {"Id", "SizePercent", "MessageConfiguration", "Schedule", "TemplateConfiguration",
     "TreatmentName", "TreatmentDescription", "CustomDeliveryConfiguration", "State"}
)  # fmt: skip
"""Keys of an AdditionalTreatments item (``State`` is read-only get-campaign output)."""


def _campaign_prefix(campaign_id: str) -> bytes:
    return campaign_id.encode("utf-8", "surrogatepass") + b"\x00"


def bucket(campaign_id: str, endpoint_id: str) -> int:
    """The endpoint's stable bucket 0..BUCKETS-1 for this campaign.

    ``int(BLAKE2b-64(utf8(campaign_id) + b"\\x00" + utf8(endpoint_id)), big-endian) % 10000``:
    reproducible anywhere (e.g. to find an endpoint's treatment in SQL or another language).
    """
    digest = hashlib.blake2b(
        _campaign_prefix(campaign_id) + endpoint_id.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Treatment:
    """One treatment of the campaign: "0" is the campaign's own, "1".."4" additional."""

    id: str
    size_percent: int
    message_configuration: Mapping[str, Any]
    name: str | None = None
    description: str | None = None
    custom_delivery: Mapping[str, Any] | None = None


class Treatments:
    """Assigns endpoints to the holdout or a treatment; holds each treatment's messages."""

    __slots__ = ("_campaign", "_hasher", "_targets", "_uppers", "campaign_id",
                 "holdout_percent", "treatments")  # fmt: skip

    def __init__(
        self, campaign: Campaign, holdout_percent: int, treatments: list[Treatment]
    ) -> None:
        self._campaign = campaign
        self.campaign_id = campaign.id
        self.holdout_percent = holdout_percent
        self.treatments = {t.id: t for t in treatments}
        # Upper bucket bound (exclusive) of each segment of the layout, in order.
        bounds: list[tuple[int, str | None]] = [(holdout_percent * BUCKETS // 100, None)]
        edge = bounds[0][0]
        for t in treatments:
            if t.id == "0":
                continue
            edge += t.size_percent * BUCKETS // 100
            bounds.append((edge, t.id))
        bounds.append((BUCKETS, "0"))
        self._uppers = [upper for upper, _ in bounds]
        self._targets = [target for _, target in bounds]
        # ``bucket()``'s hash with the campaign part absorbed once; copied per endpoint.
        self._hasher = hashlib.blake2b(_campaign_prefix(campaign.id), digest_size=8)

    @property
    def is_split(self) -> bool:
        """Whether any endpoint can land outside the main treatment."""
        return bool(self.holdout_percent) or len(self.treatments) > 1

    @classmethod
    def from_campaign(
        cls, campaign: Campaign, file: str | None = None, *, key_prefix: str = "campaign"
    ) -> Treatments:
        """Validate the campaign's holdout and treatments; errors name ``key_prefix.Key``."""

        def error(key: str, message: str) -> ConfigError:
            return ConfigError(message, file=file, key=f"{key_prefix}.{key}" if key_prefix else key)

        holdout = campaign.holdout_percent
        if not 0 <= holdout <= 100:
            raise error("HoldoutPercent", f"must be between 0 and 100, got {holdout}")
        items = campaign.additional_treatments
        if len(items) > MAX_ADDITIONAL_TREATMENTS:
            raise error(
                "AdditionalTreatments",
                f"at most {MAX_ADDITIONAL_TREATMENTS} additional treatments, got {len(items)}",
            )
        parsed: list[Treatment] = []
        total = holdout
        for i, item in enumerate(items):
            parsed.append(_treatment(campaign, item, i, error))
            total += parsed[-1].size_percent
            if total > 100:
                raise error(
                    f"AdditionalTreatments[{i}].SizePercent",
                    f"HoldoutPercent ({holdout}) plus the SizePercent of treatments 1..{i + 1} "
                    f"is {total}, over 100",
                )
        main = Treatment(
            "0", 100 - total, campaign.message_configuration, campaign.treatment_name,
            None, campaign.custom_delivery,
        )  # fmt: skip
        return cls(campaign, holdout, [main, *parsed])

    @classmethod
    def from_settings(cls, settings: Settings) -> Treatments:
        return cls.from_campaign(settings.campaign, settings.file)

    @property
    def ids(self) -> list[str]:
        """TreatmentIds in use, "0" first."""
        return sorted(self.treatments)

    def assign(self, endpoint_id: str) -> str | None:
        """The endpoint's TreatmentId, or None if it is in the holdout."""
        h = self._hasher.copy()
        h.update(endpoint_id.encode("utf-8", "surrogatepass"))
        b = int.from_bytes(h.digest(), "big") % BUCKETS
        # The first segment whose (exclusive) upper bound is above the bucket.
        return self._targets[bisect_right(self._uppers, b)]

    def message_configurations(self) -> dict[str, Mapping[str, Any]]:
        """TreatmentId -> the campaign MessageConfiguration that treatment sends."""
        return {tid: t.message_configuration for tid, t in sorted(self.treatments.items())}

    def campaign_for(self, treatment_id: str) -> Campaign:
        """The campaign as this treatment sends it (its messages and custom delivery)."""
        t = self.treatments[treatment_id]
        if treatment_id == "0":
            return self._campaign
        return replace(
            self._campaign,
            message_configuration=t.message_configuration,
            treatment_name=t.name,
            custom_delivery=t.custom_delivery,
        )

    def message_for(self, treatment_id: str, channel: str) -> Mapping[str, Any] | None:
        """The treatment's message object for a ChannelType (``Campaign.message_for``)."""
        return self.campaign_for(treatment_id).message_for(channel)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t.id}={t.size_percent}%" for t in self.treatments.values())
        return f"Treatments(holdout={self.holdout_percent}%, {sizes})"


def _treatment(campaign: Campaign, item: Any, i: int, error: Any) -> Treatment:
    where = f"AdditionalTreatments[{i}]"
    if not isinstance(item, Mapping):
        raise error(where, f"expected a table, got {type(item).__name__}")
    for key in item:
        if key not in TREATMENT_KEYS:
            raise error(
                f"{where}.{key}", f"unknown key; use one of {', '.join(sorted(TREATMENT_KEYS))}"
            )
    size = item.get("SizePercent")
    if isinstance(size, bool) or not isinstance(size, int):
        raise error(f"{where}.SizePercent", "is required: an integer percentage of the segment")
    if not 0 <= size <= 100:
        raise error(f"{where}.SizePercent", f"must be between 0 and 100, got {size}")
    for key in ("TreatmentName", "TreatmentDescription", "Id"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise error(f"{where}.{key}", f"expected a string, got {type(value).__name__}")
    for key in ("Schedule", "CustomDeliveryConfiguration", "TemplateConfiguration"):
        value = item.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise error(f"{where}.{key}", f"expected a table, got {type(value).__name__}")
    mc = item.get("MessageConfiguration")
    if mc:
        if not isinstance(mc, Mapping):
            raise error(
                f"{where}.MessageConfiguration", f"expected a table, got {type(mc).__name__}"
            )
        for key, message in mc.items():
            if key not in MESSAGE_KEYS:
                raise error(f"{where}.MessageConfiguration.{key}", "unknown message key")
            if not isinstance(message, Mapping):
                raise error(f"{where}.MessageConfiguration.{key}", "expected a table")
        custom = item.get("CustomDeliveryConfiguration") or campaign.custom_delivery
        mine = replace(campaign, message_configuration=mc, custom_delivery=custom).channels
        missing = sorted(campaign.channels - mine)
        if missing:
            raise error(
                f"{where}.MessageConfiguration",
                f"has no message for {', '.join(missing)}, which the campaign sends; give one "
                "or leave MessageConfiguration out to inherit the campaign's",
            )
        messages: Mapping[str, Any] = dict(mc)
    else:
        messages = campaign.message_configuration
    return Treatment(
        str(i + 1), size, messages, item.get("TreatmentName"), item.get("TreatmentDescription"),
        item.get("CustomDeliveryConfiguration") or campaign.custom_delivery,
    )  # fmt: skip
