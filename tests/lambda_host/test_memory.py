"""The local host's memory is bounded by its configuration, not by its callers or its
functions (issue 12, finding 2): queued ``Event`` payloads, synchronous request bodies
and function responses. Peak resident sizes come from ``getrusage(RUSAGE_CHILDREN)`` in
a probe process whose only child is the host (``rss_probe.py``); nothing is timed.

On the code before the bounds, the same floods cost 136 MB (Event queue), 151 MB
(throttled bodies read anyway) and 64 MB (a response read up to a 64 MB cap).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dispatcher.lambda_host.invoke_api import DEFAULT_MAX_QUEUED_EVENT_BYTES

PROBE = Path(__file__).with_name("rss_probe.py")
MIB = 1024 * 1024
GROWTH_LIMIT_KB = 40 * 1024
"""What a flood may add to the warm host's resident size: the 16 MiB Event queue of the
probe's host, plus the transient copies of the request being read."""


def probe(scenario: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, str(PROBE), scenario], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def growth(report: dict[str, Any]) -> int:
    return int(report["peak_kb"]) - int(report["baseline_kb"])


def test_queued_event_payloads_are_bounded_in_bytes() -> None:
    """120 Event invokes of 1 MiB while the function is busy: 16 are queued (16 MiB),
    the rest throttled as Lambda throttles, 429 ``TooManyRequestsException``."""
    report = probe("events")
    statuses = report["statuses"]
    assert statuses.count(202) == 16
    assert statuses.count(429) == 120 - 16
    assert growth(report) < GROWTH_LIMIT_KB, report


def test_throttled_requests_are_not_read() -> None:
    """24 synchronous 6 MB invokes of a busy function: throttled before their bodies are
    read, so they cost the host nothing."""
    report = probe("sync")
    assert report["statuses"] == [429] * 24
    assert growth(report) < GROWTH_LIMIT_KB, report


def test_an_oversized_response_is_refused_without_being_held() -> None:
    """A function answers 100 MiB, a chunk at a time: the invocation fails as in Lambda
    and the host held at most the 6 MB limit of it."""
    report = probe("response")
    assert report["statuses"] == [200]
    assert report["answer"]["errorType"] == "Function.ResponseSizeTooLarge"
    assert growth(report) < GROWTH_LIMIT_KB, report


def test_the_default_event_queue_bound_is_64_mib() -> None:
    assert DEFAULT_MAX_QUEUED_EVENT_BYTES == 64 * MIB


def test_an_event_queue_smaller_than_one_event_is_a_config_error() -> None:
    from dispatcher.errors import ConfigError
    from dispatcher.lambda_host import FunctionSpec, LambdaHost

    spec = FunctionSpec.from_handler("f", f"{PROBE.parent / 'handlers' / 'py_handlers.py'}:echo")
    with pytest.raises(ConfigError, match="max_queued_event_bytes"):
        LambdaHost([spec], max_queued_event_bytes=MIB - 1)
