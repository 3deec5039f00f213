"""AWS partitions (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``...) from botocore's own
``partitions.json``: no hand-kept list of region prefixes to fall out of date."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import botocore

__all__ = ["arn", "partition_for_region"]


@lru_cache(maxsize=64)
def partition_for_region(region: str) -> str:
    """The AWS partition (``aws``, ``aws-cn``, ``aws-us-gov``, ...) a region belongs to.

    Uses botocore's ``partitions.json`` (known regions first, then each partition's
    region regex); unknown regions, such as a local test region, are ``aws``.
    """
    data = json.loads(
        (Path(botocore.__file__).parent / "data" / "partitions.json").read_text("utf-8")
    )
    partitions = data["partitions"]
    for partition in partitions:
        if region in partition.get("regions", {}):
            return str(partition["id"])
    for partition in partitions:
        if re.fullmatch(partition["regionRegex"], region):
            return str(partition["id"])
    return "aws"


def arn(service: str, region: str, account: str, resource: str) -> str:
    """An ARN in the partition of ``region``."""
    return f"arn:{partition_for_region(region)}:{service}:{region}:{account}:{resource}"
