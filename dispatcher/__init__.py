"""segment-dispatcher: Amazon Pinpoint-style campaign sends with segment hooks.

    from dispatcher import load_settings, run
    summary = run(load_settings("config/example.toml"), out_dir="out")
"""

from dispatcher.channels.base import Message, Sender, SendResult
from dispatcher.config import Settings, load_settings
from dispatcher.dispatch import dispatch, preview, run
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

__all__ = [
    "CampaignAlreadyRun",
    "ConfigError",
    "DispatchError",
    "HookAttemptError",
    "HookError",
    "HookResultError",
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
