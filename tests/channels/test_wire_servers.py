"""The local servers as subprocesses (how fleet tests and the benchmark use them)."""

from __future__ import annotations

import urllib.error

import pytest

from dispatcher.channels import push, ses, sms
from dispatcher.model import Status
from dispatcher.testing import ServerProcess, http_json

pytestmark = pytest.mark.anyio


async def test_sms_server_subprocess_records_and_takes_faults_over_http(sender_ctx, make_message):
    with ServerProcess("sms") as server:
        sender = sms.create("SMS", {"endpoint_url": server.url}, sender_ctx)
        server.set_faults(throttle_next=1, retry_after=7)
        first, second = [(await sender.send([make_message("+14255550100", "SMS")]))[0]
                         for _ in range(2)]  # fmt: skip
        assert (first.status, first.retry_after) == (Status.THROTTLED, 7.0)
        assert second.status is Status.SUCCESS
        [recorded] = server.messages()
        assert recorded["MessageId"] == second.message_id
        assert server.stats()["calls"] == 2
        server.reset()
        assert server.messages() == [] and server.calls() == []
        with pytest.raises(urllib.error.HTTPError):
            server.set_faults(no_such_fault=1)
    assert server.process is None


async def test_push_and_ses_servers_run_as_subprocesses(sender_ctx, make_message):
    with ServerProcess("push") as push_server, ServerProcess("ses") as ses_server:
        pusher = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
        [pushed] = await pusher.send([make_message("tok", "GCM")])
        mailer = ses.create(
            "EMAIL", {"endpoint_url": ses_server.url, "from_address": "a@x.io"}, sender_ctx
        )
        [mailed] = await mailer.send([make_message("b@x.io")])
        assert (pushed.status, mailed.status) == (Status.SUCCESS, Status.SUCCESS)
        assert push_server.messages()[0]["MessageId"] == pushed.message_id
        assert http_json(f"{ses_server.url}/_test/messages")[0]["MessageId"] == mailed.message_id


def test_a_server_that_cannot_start_is_reported():
    server = ServerProcess("no_such_server", ready_timeout=5)
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()
    assert server.process is None
