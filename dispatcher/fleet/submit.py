"""``dispatcher submit``: cut a run into shard jobs and put them on an SQS queue.

The segment (``s3://bucket/key`` or a prefix of objects) is read to find record-aligned
cut points (``segments.shards.plan_shards``), then once more, in order, for what only
the whole segment knows (``fleet.plan``: duplicate addresses, shared endpoint ids, and
with a segment definition the lines outside the segment). Each shard becomes one SQS
message (``fleet.jobs.ShardJob``) carrying the run's config and those facts, so any
worker can process any shard alone. The run and its shard count go
into the DynamoDB ledger first, so ``dispatcher status`` knows what to expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dispatcher.aws import AwsClients
from dispatcher.config import Settings, load_document, parse_settings
from dispatcher.errors import ConfigError
from dispatcher.fleet.jobs import ShardJob
from dispatcher.ledger.base import RunInfo
from dispatcher.membership import EXTRA as DEFINITION_EXTRA
from dispatcher.membership import run_definition
from dispatcher.outcomes import now_iso

__all__ = ["ledger_table", "refuse_inline_secrets", "refuse_schedule", "submit",
           "with_templates_inlined"]  # fmt: skip


def refuse_inline_secrets(settings: Settings) -> None:
    """Every shard job carries the config: an inline secret would sit in every message."""
    from dispatcher.secrets import secret_tables

    for key, table in secret_tables(settings).items():
        if table.get("secret"):
            raise ConfigError(
                "an inline secret would travel in every SQS job message; reference it "
                'instead: secret_env = "NAME" (an environment variable of the workers), '
                'secret_id = "NAME_OR_ARN" (AWS Secrets Manager) or secret_parameter = '
                '"/NAME" (SSM Parameter Store)',
                file=settings.file,
                key=f"{key}.secret",
            )


def with_templates_inlined(data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The config a job carries: templates already merged into the messages, since the
    workers do not have the template files."""
    campaign = settings.campaign
    if not campaign.template_configuration and not any(
        isinstance(t, dict) and t.get("TemplateConfiguration") for t in
        (data.get("campaign") or {}).get("AdditionalTreatments") or []
    ):  # fmt: skip
        return data
    table = dict(data["campaign"])
    table["MessageConfiguration"] = dict(campaign.message_configuration)
    table.pop("TemplateConfiguration", None)
    if campaign.additional_treatments:
        table["AdditionalTreatments"] = [dict(t) for t in campaign.additional_treatments]
    out = {k: v for k, v in data.items() if k != "templates"}
    out["campaign"] = table
    return out


def refuse_schedule(settings: Settings, *, now: bool, ignore_pause: bool) -> None:
    """What the fleet does not do with a schedule is refused, never done differently: the
    jobs are enqueued now, so a StartTime ahead needs ``now`` (or submit at that time, from
    a scheduler); local-time waves are sent by ``dispatcher run`` only."""
    from datetime import UTC, datetime

    from dispatcher.attempts import refuse_unscheduled
    from dispatcher.campaign.schedule import utc_iso

    moment = datetime.now(UTC)
    refuse_unscheduled(settings, moment, ignore_pause=ignore_pause)
    schedule = settings.schedule
    if schedule.local_time:
        raise ConfigError(
            "a local-time campaign (IsLocalTime: true) is sent in waves by `dispatcher run`; "
            "a fleet run would send every time zone at once",
            file=settings.file, key="campaign.Schedule.IsLocalTime",
        )  # fmt: skip
    first = schedule.first()
    if not now and first is not None and schedule.due(moment) is None:
        raise ConfigError(
            f"the campaign starts at {utc_iso(first)}: submit it then (e.g. from EventBridge "
            "Scheduler or cron), or pass --now to enqueue it at once",
            file=settings.file, key="campaign.Schedule.StartTime",
        )  # fmt: skip


def ledger_table(settings: Settings, override: str | None) -> str:
    table = override or settings.ledger.get("dynamodb_table")
    if not table:
        raise ConfigError(
            "a fleet run needs the DynamoDB ledger: set [ledger] dynamodb_table or --ledger-table",
            file=settings.file,
            key="ledger.dynamodb_table",
        )
    return str(table)


async def submit(
    config: str | Path,
    *,
    queue_url: str,
    clients: AwsClients,
    segment: str | None = None,
    output: str | None = None,
    table: str | None = None,
    run_id: str | None = None,
    target_records: int = 5000,
    campaign_json: str | None = None,
    settings_json: str | None = None,
    template_json: Sequence[str] = (),
    now: bool = False,
    ignore_pause: bool = False,
    region: str | None = None,
    segment_definition: str | None = None,
) -> tuple[str, int]:
    """Plan and enqueue a fleet run; return (RunId, number of shard jobs).

    ``run_id`` of a run already in the ledger submits it again (its next attempt): the
    workers skip every line it has settled, and claims keep every send at most once.
    ``region`` overrides the config's ``[project] Region`` (``--region``), in the jobs too.
    ``segment_definition`` overrides ``[segment] definition``: it is evaluated here, once,
    with the run's start as now (a run submitted again: its first start), and each job
    carries its lines outside the segment (``fleet.plan``).
    """
    from dispatcher.attempts import new_run_id
    from dispatcher.fleet.plan import shard_facts
    from dispatcher.ledger.dynamodb import DynamoLedger
    from dispatcher.segments.s3 import is_s3_url
    from dispatcher.segments.shards import plan_shards

    path = Path(config).resolve()  # noqa: ASYNC240 - no I/O to speak of
    data, origins = load_document(path, campaign_json=campaign_json, settings_json=settings_json)
    if region:
        # In the config the jobs carry too: the workers run the same project (its hook).
        data = {**data, "project": {**(data.get("project") or {}), "Region": region}}
    settings = parse_settings(data, str(config), path.parent, origins=origins,
                              template_files=tuple(Path(p) for p in template_json))  # fmt: skip
    refuse_inline_secrets(settings)
    refuse_schedule(settings, now=now, ignore_pause=ignore_pause)
    source = segment or settings.segment_source
    if not source or not is_s3_url(source):
        raise ConfigError(
            f"a fleet run reads its segment from S3 (s3://bucket/key or prefix), got {source!r}",
            file=settings.file,
            key="--segment" if segment else "segment.source",
        )
    table_name = ledger_table(settings, table)
    prior = await _prior_run(table_name, run_id, clients) if run_id else None
    # Read before the segment is: a bad definition costs no S3 read.
    membership = await run_definition(settings, segment_definition, prior, force_changed=False)
    started_at = definition_now = now_iso()
    in_segment = None
    if membership is not None:
        # Recency is measured from the run's first start, in every submission of it.
        recorded = prior.extra.get(DEFINITION_EXTRA) if prior is not None else None
        first = recorded.get("Now") if isinstance(recorded, dict) else None
        definition_now = first or (prior.started_at if prior else started_at)
        in_segment = membership.narrow_predicate(definition_now)
    run_id = run_id or new_run_id()
    out = output or f"{source.rstrip('/').rsplit('/', 1)[0]}/runs/{run_id}/"
    max_bytes = settings.segment_max_record_bytes
    shards = await plan_shards(source, clients, target_records=target_records,
                               fmt=settings.segment_format, max_record_bytes=max_bytes)  # fmt: skip
    facts = await shard_facts(shards, clients, channels=settings.campaign.channels,
                              max_record_bytes=max_bytes, in_segment=in_segment)  # fmt: skip
    config_data = with_templates_inlined(data, settings)
    jobs = [
        ShardJob(run_id=run_id, shard=shard, shards=len(shards), config_path=str(path),
                 config_data=config_data, table=table_name, region=settings.project.region,
                 output=out, duplicates=duplicates, shared_ids=shared, outside=outside)
        for shard, (duplicates, shared, outside) in zip(shards, facts, strict=True)
    ]  # fmt: skip
    bodies = [job.to_message() for job in jobs]  # a job too large fails before the run starts
    ledger = DynamoLedger(table_name, clients=clients)
    try:
        info = RunInfo(
            run_id=run_id,
            config=str(path),
            segment=source,
            campaign_id=settings.campaign.id,
            application_id=settings.project.application_id,
            started_at=started_at,
            extra={"shards": len(shards), "output": out, "queue": queue_url,
                   # Records read (the summary's Scanned) and the definition applied.
                   "Scanned": sum(shard.records for shard in shards),
                   **({DEFINITION_EXTRA: {**membership.record(), "Now": definition_now}}
                      if membership else {})},
        )  # fmt: skip
        await ledger.start_run(info)
    finally:
        await ledger.aclose()
    await _enqueue(bodies, queue_url, clients)
    return run_id, len(bodies)


async def _prior_run(table: str, run_id: str, clients: AwsClients) -> RunInfo | None:
    """The run submitted again, if the ledger has it: its start and definition hold."""
    from dispatcher.ledger.dynamodb import DynamoLedger

    ledger = DynamoLedger(table, clients=clients)
    try:
        return await ledger.get_run(run_id)
    finally:
        await ledger.aclose()


async def _enqueue(bodies: list[bytes], queue_url: str, clients: AwsClients) -> None:
    sqs = await clients.client("sqs")
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body.decode()}
                   for i, body in enumerate(bodies[start : start + 10])]  # fmt: skip
        response: dict[str, Any] = await sqs.send_message_batch(QueueUrl=queue_url,
                                                                Entries=entries)  # fmt: skip
        if response.get("Failed"):
            failed = response["Failed"][0]
            raise ConfigError(f"SQS refused a shard job: {failed.get('Code')}: "
                              f"{failed.get('Message')}", key="--queue")  # fmt: skip
