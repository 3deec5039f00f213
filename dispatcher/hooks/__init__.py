"""Hooks: which transport runs a hook function, and the guard in front of it.

A ``LambdaFunctionName`` registered under ``[functions.NAME]`` runs where that entry
says (``python`` in process, ``url`` as a webhook, ``endpoint_url`` as a Lambda-compatible
endpoint such as ``dispatcher lambda serve``); any other name is an AWS Lambda function.
``WebUrl`` is a webhook. A registered function with a ``policy`` file must allow the
campaign's source ARN, or the run is refused before any endpoint data leaves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dispatcher.config import CampaignHook, FunctionConfig, Settings
from dispatcher.errors import ConfigError, PolicyDenied
from dispatcher.hooks.base import HookTransport
from dispatcher.hooks.concurrency import pool_size
from dispatcher.hooks.python import Handler, PythonTransport, load_handler


def check_policy(settings: Settings, function: FunctionConfig) -> None:
    """Refuse a function whose resource policy does not allow this campaign."""
    if function.policy is None:
        return
    from dispatcher.policy import load_policy, source_arn

    p = settings.project
    arn = source_arn(p.region, p.account_id, p.application_id, settings.campaign.id)
    if not load_policy(function.policy).allows(arn, p.account_id):
        raise PolicyDenied(
            f"the resource policy of function {function.name!r} ({function.policy}) does not "
            f"allow {arn} (account {p.account_id}); the function was not invoked",
            file=settings.file,
            key=f"functions.{function.name}.policy",
        )


def _secret(
    settings: Settings, key: str, table: Mapping[str, Any], secrets: Mapping[str, str]
) -> str | None:
    """The signing secret ``resolve_secrets`` fetched for ``key`` (env, AWS, inline)."""
    if key in secrets:
        return secrets[key]
    env = table.get("secret_env")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(
                f"environment variable {env!r} is not set",
                file=settings.file,
                key=f"{key}.secret_env",
            )
        return value
    return table.get("secret")


def _webhook(
    settings: Settings, name: str, url: str, key: str, concurrency: int,
    secrets: Mapping[str, str],
) -> HookTransport:  # fmt: skip
    from dispatcher.hooks.webhook import WebhookTransport

    table: Mapping[str, Any] = settings.webhook
    if key != "webhook":
        f = settings.functions[key.removeprefix("functions.")]
        table = {"secret": f.secret, "secret_env": f.secret_env}
    try:
        return WebhookTransport(
            url,
            secret=_secret(settings, key, table, secrets),
            timeout=float(settings.webhook.get("timeout", settings.dispatch.hook_attempt_timeout)),
            concurrency=concurrency,
            name=name,
            application_id=settings.project.application_id,
            campaign_id=settings.campaign.id,
        )
    except ConfigError as exc:
        raise ConfigError(exc.message, file=settings.file, key=key) from None


def create_transport(
    settings: Settings,
    hook: CampaignHook,
    *,
    handlers: Mapping[str, Handler] | None = None,
    clients: Any = None,
    secrets: Mapping[str, str] | None = None,
) -> HookTransport:
    """Build the transport for ``hook``; raises ConfigError / PolicyDenied before any call.

    ``secrets`` are the webhook secrets ``dispatcher.secrets.resolve_secrets`` fetched.
    """
    # Each transport's pool is sized for the most calls the hook stage may make at once:
    # the fixed hook_concurrency, else the adaptive bound (``pool_size``).
    d = settings.dispatch
    secrets = secrets or {}
    if hook.web_url:
        return _webhook(
            settings, hook.web_url, hook.web_url, "webhook", pool_size(d, "webhook"), secrets
        )
    name = hook.lambda_function_name or ""
    if handlers and name in handlers:
        return PythonTransport(name, handlers[name], concurrency=pool_size(d, "python"))
    function = settings.functions.get(name)
    if function is not None:
        check_policy(settings, function)
        key = f"functions.{name}"
        if function.python:
            handler = load_handler(function.python, file=settings.file, key=f"{key}.python")
            return PythonTransport(name, handler, concurrency=pool_size(d, "python"))
        if function.url:
            return _webhook(settings, name, function.url, key, pool_size(d, "webhook"), secrets)
    from dispatcher.hooks.aws_lambda import LambdaTransport, parse_function_name

    try:
        ref = parse_function_name(name, settings.project.region)
    except ConfigError as exc:
        hook_key = "campaign.Hook" if settings.campaign.hook is hook else "project.CampaignHook"
        raise ConfigError(
            exc.message, file=settings.file, key=f"{hook_key}.LambdaFunctionName"
        ) from None
    return LambdaTransport(
        ref,
        clients=clients,
        endpoint_url=function.endpoint_url if function else None,
        concurrency=pool_size(d, "lambda"),
        client=(function.client if function else None) or "lean",
    )


__all__ = ["HookTransport", "check_policy", "create_transport"]
