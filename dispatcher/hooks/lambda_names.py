"""Lambda function references as Pinpoint's ``LambdaFunctionName`` holds them: a name, a
partial or full ARN, with an optional ``:qualifier``; checked against botocore's model
pattern, and against the project's region (Pinpoint requires the hook there)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dispatcher.aws.partitions import partition_for_region
from dispatcher.errors import ConfigError

__all__ = ["LAMBDA_FUNCTION_NAME_PATTERN", "LambdaFunctionRef", "parse_function_name"]


# botocore 1.43's model pattern for Invoke's FunctionName (kept for reference and tests):
LAMBDA_FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
_NAME = r"(?P<name>[a-zA-Z0-9_.-]{1,64})"
_QUALIFIER = r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]{1,128}))?"
_REGION = r"(?P<region>(?:eusc-)?[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d)"
_FULL_ARN = re.compile(
    rf"arn:(?P<partition>aws[a-zA-Z-]*):lambda:{_REGION}:(?P<account>\d{{12}}):function:"
    rf"{_NAME}{_QUALIFIER}"
)
_PARTIAL_ARN = re.compile(rf"(?P<account>\d{{12}}):(?:function:)?{_NAME}{_QUALIFIER}")
_PLAIN = re.compile(rf"{_NAME}{_QUALIFIER}")
_PROJECT_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_FUNCTION_NAME = 256  # FunctionName's max length in the Invoke API model

_FORMS = (
    "a function name ('my-hook'), 'my-hook:QUALIFIER', a partial ARN "
    "('123456789012:my-hook' or '123456789012:function:my-hook') or a full ARN "
    "('arn:aws:lambda:REGION:123456789012:function:my-hook[:QUALIFIER]')"
)


@dataclass(frozen=True, slots=True)
class LambdaFunctionRef:
    """A parsed hook function reference.

    ``region`` is the ARN's region, or the project region when the name has none;
    ``account`` is None for a bare name (the caller's own account).
    """

    function_name: str
    qualifier: str | None
    region: str
    account: str | None
    partition: str
    source: str

    @property
    def arn(self) -> str | None:
        """The unqualified function ARN, when the account is known."""
        if self.account is None:
            return None
        return (
            f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:"
            f"{self.function_name}"
        )

    @property
    def invoke_name(self) -> str:
        """The ``FunctionName`` path parameter: the ARN when known, else the bare name.

        The qualifier always travels separately as the ``Qualifier`` query parameter.
        """
        return self.arn or self.function_name

    def __str__(self) -> str:
        return self.source


def parse_function_name(name: str, project_region: str) -> LambdaFunctionRef:
    """Parse a hook's ``LambdaFunctionName`` (name, partial or full ARN, ``:qualifier``).

    Raises ``ConfigError`` for a malformed name, an ARN whose partition does not match
    its region, and for a function in another region than ``project_region``.
    """
    if not isinstance(project_region, str) or not _PROJECT_REGION.fullmatch(project_region):
        raise ConfigError(f"project region {project_region!r} is not a valid AWS region name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"Lambda function name {name!r} is empty; expected {_FORMS}")
    if len(name) > _MAX_FUNCTION_NAME:
        raise ConfigError(
            f"Lambda function name {name[:40]!r}... is {len(name)} characters long; "
            f"the Invoke API allows at most {_MAX_FUNCTION_NAME}"
        )
    project_partition = partition_for_region(project_region)
    if name.startswith("arn:"):
        match = _FULL_ARN.fullmatch(name)
        if match is None:
            raise ConfigError(
                f"Lambda function ARN {name!r} is malformed; expected "
                "'arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]' with a "
                "12-digit account, a name of at most 64 characters [a-zA-Z0-9-_.] and a "
                "qualifier of at most 128 characters [a-zA-Z0-9-_] or $LATEST"
            )
        region = match["region"]
        partition = match["partition"]
        if partition != partition_for_region(region):
            raise ConfigError(
                f"Lambda function ARN {name!r} names partition {partition!r}, but region "
                f"{region} is in partition {partition_for_region(region)!r}"
            )
        if region != project_region:
            raise ConfigError(
                f"Lambda function {match['name']!r} ({name}) is in region {region}, but the "
                f"project is in region {project_region}: a hook function must be in the "
                "project's region, as Amazon Pinpoint requires. Deploy the function to "
                f"{project_region} (or run the campaign in {region})."
            )
    else:
        match = _PARTIAL_ARN.fullmatch(name) or _PLAIN.fullmatch(name)
        if match is None:
            raise ConfigError(f"Lambda function name {name!r} is malformed; expected {_FORMS}")
        region = project_region
        partition = project_partition
    groups = match.groupdict()
    return LambdaFunctionRef(
        function_name=groups["name"],
        qualifier=groups["qualifier"],
        region=region,
        account=groups.get("account"),
        partition=partition,
        source=name,
    )
