"""Webhook signing secrets, resolved where the run happens and never written anywhere.

A ``[webhook]`` or ``[functions.NAME]`` table gives its secret one of four ways:
``secret`` (inline: fine on one machine, refused by ``submit`` because job messages
would carry it), ``secret_env`` (an environment variable of the process),
``secret_id`` (AWS Secrets Manager, name or ARN: ``SecretString``) or
``secret_parameter`` (SSM Parameter Store, decrypted). ``resolve_secrets`` reads the
remote ones once per run, so a fleet worker fetches them with its own role.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dispatcher.config import Settings
from dispatcher.errors import ConfigError

__all__ = ["resolve_secrets", "secret_tables", "webhook_keys"]


def secret_tables(settings: Settings) -> dict[str, Mapping[str, Any]]:
    """Config key -> table, for every table that says where a webhook secret is."""
    tables: dict[str, Mapping[str, Any]] = {"webhook": settings.webhook}
    for name, f in settings.functions.items():
        tables[f"functions.{name}"] = {"secret": f.secret, "secret_env": f.secret_env,
                                       "secret_id": f.secret_id,
                                       "secret_parameter": f.secret_parameter}  # fmt: skip
    return {k: t for k, t in tables.items() if any(t.get(s) for s in _SOURCES)}


_SOURCES = ("secret", "secret_env", "secret_id", "secret_parameter")


def webhook_keys(settings: Settings) -> set[str]:
    """The tables whose secret this run's webhooks sign with (hook and custom channel)."""
    keys = set()
    hook = settings.hook
    if hook is not None and hook.web_url:
        keys.add("webhook")
    elif hook is not None and hook.lambda_function_name:
        function = settings.functions.get(hook.lambda_function_name)
        if function is not None and function.url:
            keys.add(f"functions.{hook.lambda_function_name}")
    uri = str((settings.campaign.custom_delivery or {}).get("DeliveryUri", ""))
    if "://" in uri:
        keys.add("webhook")
    return keys


async def resolve_secrets(settings: Settings, clients: Any) -> dict[str, str]:
    """Config key -> the secret's value, for the tables this run's webhooks use."""
    needed = webhook_keys(settings)
    out: dict[str, str] = {}
    for key, table in secret_tables(settings).items():
        if key in needed:
            out[key] = await _resolve(settings, key, table, clients)
    return out


async def _resolve(settings: Settings, key: str, table: Mapping[str, Any], clients: Any) -> str:
    def error(name: str, message: str) -> ConfigError:
        return ConfigError(message, file=settings.file, key=f"{key}.{name}")

    if table.get("secret"):
        return str(table["secret"])
    if table.get("secret_env"):
        value = os.environ.get(table["secret_env"])
        if not value:
            raise error("secret_env", f"environment variable {table['secret_env']!r} is not set")
        return value
    from botocore.exceptions import BotoCoreError, ClientError

    if table.get("secret_id"):
        name = str(table["secret_id"])
        try:
            sm = await clients.client("secretsmanager")
            answer = await sm.get_secret_value(SecretId=name)
        except (ClientError, BotoCoreError) as exc:
            raise error("secret_id", f"AWS Secrets Manager secret {name!r}: {exc}") from None
        value = answer.get("SecretString")
        if not value:
            raise error("secret_id", f"secret {name!r} has no SecretString")
        return str(value)
    name = str(table["secret_parameter"])
    try:
        ssm = await clients.client("ssm")
        answer = await ssm.get_parameter(Name=name, WithDecryption=True)
    except (ClientError, BotoCoreError) as exc:
        raise error("secret_parameter", f"SSM parameter {name!r}: {exc}") from None
    return str(answer["Parameter"]["Value"])
