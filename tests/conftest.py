"""Shared fixtures: config and segment builders for tests that run real pipelines, and
the session's one moto server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config import Settings, parse_settings
from dispatcher.testing.moto import MotoServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """The one moto server of this test session (of each xdist worker).

    Tests keep apart by unique names (a bucket, table or queue of their own); a test
    that needs an empty account, or uses fixed names, takes ``moto`` instead.
    """
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, emptied for this test (``POST /moto-api/reset``)."""
    moto_server.reset()
    return moto_server


def endpoint(i: int, channel: str = "SMS", **extra: Any) -> dict[str, Any]:
    """A valid Pinpoint endpoint record with a unique address."""
    address = {"SMS": f"+1206{i:07d}", "EMAIL": f"user{i}@example.com"}.get(channel, f"tok{i:08d}")
    record: dict[str, Any] = {
        "Id": f"ep-{i}",
        "ChannelType": channel,
        "Address": address,
        "User": {"UserId": f"u{i}", "UserAttributes": {"FirstName": [f"Name{i}"]}},
        "Attributes": {"Tier": ["gold"]},
    }
    record.update(extra)
    return record


def write_jsonl(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    with path.open("w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def export_with_twins(n: int) -> list[dict[str, Any] | str]:
    """ios on every third line, android elsewhere; every tenth line an ios twin of the
    address five lines up (android there: outside the segment, or ios: a duplicate);
    a malformed line every 97th."""
    records: list[dict[str, Any] | str] = []
    for line in range(1, n + 1):
        if line % 97 == 0:
            records.append("{not json")
        elif line % 10 == 0:
            records.append({**endpoint(line - 5), "Id": f"ep-{line}",
                            "Demographic": {"Platform": "ios"}})  # fmt: skip
        else:
            records.append(endpoint(line, Demographic={
                "Platform": "ios" if line % 3 == 0 else "android"}))  # fmt: skip
    return records


BASE_CONFIG: dict[str, Any] = {
    "project": {"ApplicationId": "app-1", "Region": "us-east-1", "AccountId": "111122223333"},
    "campaign": {
        "Id": "camp-1",
        "MessageConfiguration": {
            "SMSMessage": {"Body": "Hi {{User.UserAttributes.FirstName}} {{Attributes.Score}}"},
            "EmailMessage": {
                "Title": "Hello {{User.UserAttributes.FirstName}}",
                "Body": "Text {{Attributes.Score}}",
                "HtmlBody": "<p>{{Attributes.Score}}</p>",
                "FromAddress": "from@example.com",
            },
            "GCMMessage": {"Title": "T {{Attributes.Score}}", "Body": "B {{Id}}"},
        },
    },
}


def make_settings(tmp_path: Path, **tables: Any) -> Settings:
    """Settings from BASE_CONFIG with top-level tables replaced or merged (campaign)."""
    data = json.loads(json.dumps(BASE_CONFIG))
    for name, value in tables.items():
        if name == "campaign":
            data["campaign"].update(value)
        else:
            data[name] = value
    return parse_settings(data, str(tmp_path / "test.toml"), tmp_path)


def with_hook(name: str = "hook", mode: str = "FILTER") -> dict[str, Any]:
    return {"Hook": {"LambdaFunctionName": name, "Mode": mode}}


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    return lambda **tables: make_settings(tmp_path, **tables)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
