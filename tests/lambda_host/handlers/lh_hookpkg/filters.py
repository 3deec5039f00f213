"""A hook in a package, served as ``lh_hookpkg.filters:handler``."""

import os


def handler(event, context):
    endpoints = event["Endpoints"]
    return {k: v for k, v in endpoints.items() if v.get("ChannelType") == "SMS"} | {
        "_meta": {"module": __name__, "pid": os.getpid(), "requestId": context.aws_request_id}
    }
