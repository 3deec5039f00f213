"""End-to-end fixtures: the channel servers and moto, shared with tests/channels."""

from tests.channels.conftest import (  # noqa: F401
    _sesv2_loaded,
    aws_env,
    moto,
    push_server,
    sms_server,
)
