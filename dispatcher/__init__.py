"""segment-dispatcher: Amazon Pinpoint-style campaign sends with segment hooks.

    from dispatcher import load_settings, run
    summary = run(load_settings("config/example.toml"), out_dir="out")

The public names are these; everything else is an implementation module. Importing the
package is cheap: the heavy parts (aiohttp, botocore) load with the first name that
needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dispatcher.errors import (
    CampaignAlreadyRun,
    ConfigError,
    DispatchError,
    HookAttemptError,
    HookError,
    HookResultError,
    InputChanged,
    LedgerBusy,
    LedgerError,
    PolicyDenied,
    RunInterrupted,
    RunRefused,
    SegmentError,
    SendError,
    StorageError,
)
from dispatcher.model import Outcome, Status, Summary

if TYPE_CHECKING:
    from dispatcher.channels.base import Message, Sender, SendResult
    from dispatcher.config import Settings, load_settings
    from dispatcher.dispatch import dispatch, preview, run
    from dispatcher.hooks.base import HookTransport

__all__ = [
    "CampaignAlreadyRun",
    "ConfigError",
    "DispatchError",
    "HookAttemptError",
    "HookError",
    "HookResultError",
    "HookTransport",
    "InputChanged",
    "LedgerBusy",
    "LedgerError",
    "Message",
    "Outcome",
    "PolicyDenied",
    "RunInterrupted",
    "RunRefused",
    "SegmentError",
    "SendError",
    "SendResult",
    "Sender",
    "Settings",
    "Status",
    "StorageError",
    "Summary",
    "dispatch",
    "load_settings",
    "preview",
    "run",
]

_LAZY = {
    "dispatch": "dispatcher.dispatch", "run": "dispatcher.dispatch",
    "preview": "dispatcher.dispatch", "Settings": "dispatcher.config",
    "load_settings": "dispatcher.config", "Message": "dispatcher.channels.base",
    "Sender": "dispatcher.channels.base", "SendResult": "dispatcher.channels.base",
    "HookTransport": "dispatcher.hooks.base",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispatcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
