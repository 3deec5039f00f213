"""Channel senders, chosen per ChannelType by ``[channels.TYPE] sender = "..."``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from dispatcher.channels.base import Message, Sender, SenderContext, SendResult

SENDER_MODULES = {
    "outbox": "dispatcher.channels.outbox",
    "ses": "dispatcher.channels.ses",
    "sms": "dispatcher.channels.sms",
    "push": "dispatcher.channels.push",
}


def create_sender(
    name: str, channel: str, options: Mapping[str, Any], ctx: SenderContext
) -> Sender:
    """Build the sender called ``name`` for ``channel`` with its options table."""
    module = importlib.import_module(SENDER_MODULES[name])
    return module.create(channel, options, ctx)  # type: ignore[no-any-return]


__all__ = ["Message", "SendResult", "Sender", "SenderContext", "create_sender"]
