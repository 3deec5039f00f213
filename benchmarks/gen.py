"""Synthetic Pinpoint segments for benchmarks: realistic ~350-byte endpoint records."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

CHANNELS = ("SMS", "EMAIL", "GCM", "SMS", "APNS")


def endpoint(i: int) -> dict[str, object]:
    channel = CHANNELS[i % len(CHANNELS)]
    address = {"SMS": f"+1{2060000000 + i}", "EMAIL": f"user{i}@example.com"}.get(
        channel, f"{i:016x}{i * 7919:016x}"
    )
    return {
        "Id": f"ep-{i:09d}",
        "ChannelType": channel,
        "Address": address,
        "EndpointStatus": "ACTIVE",
        "OptOut": "NONE",
        "Location": {"City": "Seattle", "Country": "US", "PostalCode": "98101"},
        "Demographic": {"Platform": "android", "Make": "Google", "Timezone": "America/Los_Angeles"},
        "EffectiveDate": "2026-10-01T12:00:00.000Z",
        "Attributes": {"Tier": ["gold"], "Interests": ["music", "travel"]},
        "User": {"UserId": f"user-{i}", "UserAttributes": {"FirstName": [f"Name{i % 997}"]}},
    }


def lines(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield orjson.dumps(endpoint(i)) + b"\n"


def write_segment(path: Path, n: int) -> Path:
    """Write an n-endpoint JSON-lines segment (skipped if it already has n lines)."""
    marker = path.with_suffix(".count")
    if path.exists() and marker.exists() and marker.read_text() == str(n):
        return path
    with path.open("wb", buffering=1 << 20) as f:
        batch = []
        for line in lines(n):
            batch.append(line)
            if len(batch) == 10_000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    marker.write_text(str(n))
    return path


CONFIG = """
[project]
ApplicationId = "bench-app"
Region = "us-east-1"
AccountId = "111122223333"

[campaign]
Id = "bench"
{hook}

[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{{{User.UserAttributes.FirstName}}}}, {{{{Attributes.Tier}}}} in {{{{Location.City}}}}"
[campaign.MessageConfiguration.EmailMessage]
Title = "Hello {{{{User.UserAttributes.FirstName}}}}"
Body = "Your tier: {{{{Attributes.Tier}}}}"
HtmlBody = "<p>Your tier: {{{{Attributes.Tier}}}}</p>"
[campaign.MessageConfiguration.DefaultMessage]
Title = "Offers"
Body = "Hi {{{{User.UserAttributes.FirstName}}}}"

{functions}
[dispatch]
{hook_concurrency}send_concurrency = 4
"""


PLAIN = """
[project]
ApplicationId = "bench-app"
Region = "us-east-1"

[campaign]
Id = "bench"

[campaign.MessageConfiguration.SMSMessage]
Body = "Spring offers are live"
[campaign.MessageConfiguration.EmailMessage]
Title = "Spring offers"
Body = "Spring offers are live"
[campaign.MessageConfiguration.DefaultMessage]
Title = "Offers"
Body = "Spring offers are live"
"""


def write_config(path: Path, *, hook: str | None, functions: str = "",
                 hook_concurrency: int | None = 16, plain: bool = False) -> Path:
    """A benchmark config; ``hook_concurrency=None`` leaves it unset (adaptive)."""
    if plain:  # no hook, no message variables: the cheapest path, for memory runs
        path.write_text(PLAIN)
        return path
    hook_table = f'[campaign.Hook]\nLambdaFunctionName = "{hook}"\nMode = "FILTER"' if hook else ""
    fixed = "" if hook_concurrency is None else f"hook_concurrency = {hook_concurrency}\n"
    path.write_text(CONFIG.format(hook=hook_table, functions=functions,
                                  hook_concurrency=fixed))
    return path


def stream_segment(path: Path, n: int) -> None:
    """Write n endpoints into ``path`` (a named pipe): generated on the fly, never stored."""
    with path.open("wb", buffering=1 << 20) as f:
        batch = []
        for line in lines(n):
            batch.append(line)
            if len(batch) == 10_000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))


if __name__ == "__main__":
    if sys.argv[1] == "--stream":
        stream_segment(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        write_segment(Path(sys.argv[1]), int(sys.argv[2]))
