"""segment-dispatcher: Amazon Pinpoint-style campaign sends with segment hooks.

    from dispatcher import load_settings, run
    summary = run(load_settings("config/example.toml"), out_dir="out")
"""

from dispatcher.channels.base import Message, Sender, SendResult
from dispatcher.config import Settings, load_settings
from dispatcher.dispatch import dispatch, run
from dispatcher.errors import (
    ConfigError,
    DispatchError,
    HookAttemptError,
    HookError,
    HookResultError,
    LedgerError,
    PolicyDenied,
    SegmentError,
    SendError,
)
from dispatcher.model import Outcome, Status, Summary

__all__ = [
    "ConfigError",
    "DispatchError",
    "HookAttemptError",
    "HookError",
    "HookResultError",
    "LedgerError",
    "Message",
    "Outcome",
    "PolicyDenied",
    "SegmentError",
    "SendError",
    "SendResult",
    "Sender",
    "Settings",
    "Status",
    "Summary",
    "dispatch",
    "load_settings",
    "run",
]
