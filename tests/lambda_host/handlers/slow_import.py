"""A module whose import takes longer than the host's init budget in the test."""

import time

time.sleep(30)


def handler(event, context):
    return {}
