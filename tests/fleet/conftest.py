"""Fixtures for the fleet tests (moto: the session's one server, tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
