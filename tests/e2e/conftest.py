"""End-to-end fixtures: the channel servers and moto, shared with tests/channels."""

from tests.channels.conftest import (  # noqa: F401
    aws_env,
    moto,
    moto_server,
    push_server,
    sms_server,
)
