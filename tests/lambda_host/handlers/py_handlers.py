"""Python test handlers (``py_handlers.py:NAME``), run by awslambdaric in worker processes."""

import os
import time
from pathlib import Path


def echo(event, context):
    custom = context.client_context.custom if context.client_context else None
    return {
        "event": event,
        "requestId": context.aws_request_id,
        "remainingMs": context.get_remaining_time_in_millis(),
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "invokedFunctionArn": context.invoked_function_arn,
        "memoryLimitInMB": context.memory_limit_in_mb,
        "logGroupName": context.log_group_name,
        "clientContext": custom,
        "region": os.environ.get("AWS_REGION"),
        "taskRoot": os.environ.get("LAMBDA_TASK_ROOT"),
        "pid": os.getpid(),
    }


def size(event, context):
    return {"length": len(event) if isinstance(event, str) else None, "pid": os.getpid()}


def boom(event, context):
    raise ValueError("boom: " + str(event.get("why")))


def sleep(event, context):
    time.sleep(event["seconds"])
    return {"slept": event["seconds"], "pid": os.getpid()}


def garbage(event, context):
    return b"\x00<html>this is not JSON{"


def unserializable(event, context):
    return {1, 2, 3}


def crash(event, context):
    if event.get("crash"):
        os._exit(3)
    return {"pid": os.getpid()}


def hold(event, context):
    """Signal that it started, then wait for the test to release it."""
    Path(event["started"]).write_text(str(os.getpid()))
    release = Path(event["release"])
    while not release.exists() and context.get_remaining_time_in_millis() > 100:
        time.sleep(0.01)
    return {"released": release.exists(), "pid": os.getpid()}


def touch(event, context):
    Path(event["path"]).write_text(context.aws_request_id)
    return None


def big(event, context):
    return "x" * event["size"]
