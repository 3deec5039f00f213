"""Python test handlers (``py_handlers.py:NAME``), run by awslambdaric in worker processes."""

import os
import subprocess
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


def hold_request(event, context):
    """Like ``hold``, but tell the test the request id (for a forged response)."""
    Path(event["started"]).write_text(context.aws_request_id)
    release = Path(event["release"])
    while not release.exists() and context.get_remaining_time_in_millis() > 100:
        time.sleep(0.01)
    return {"released": release.exists(), "requestId": context.aws_request_id}


def spawn(event, context):
    """Start a child and an orphan (its shell has exited), both in the worker's group."""
    child = subprocess.Popen(["sleep", "1000"], stdout=subprocess.DEVNULL)
    shell = "sleep 1000 >/dev/null 2>&1 & echo $!"
    orphan = int(subprocess.run(["sh", "-c", shell], capture_output=True, text=True).stdout)
    if event.get("exit"):
        os._exit(3)
    return {"pid": os.getpid(), "child": child.pid, "orphan": orphan}


def stream_response(event, context):
    """Answer ``event['mb']`` MiB through the worker's own Runtime API, a chunk at a time
    (as a runtime may): the worker never holds the answer, the host must not either."""
    import http.client

    address, _, secret = os.environ["AWS_LAMBDA_RUNTIME_API"].partition("/")
    chunk = b"x" * (1024 * 1024)
    connection = http.client.HTTPConnection(address)
    prefix = f"/{secret}" if secret else ""
    path = f"{prefix}/2018-06-01/runtime/invocation/{context.aws_request_id}/response"
    try:
        connection.request("POST", path, body=(chunk for _ in range(event["mb"])),
                            encode_chunked=True)
        status = connection.getresponse().status
    except OSError as exc:  # the host may close the connection once it has refused
        status = str(exc)
    return {"status": status}
