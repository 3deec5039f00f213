"""The send stage: render each endpoint's message, claim it in the ledger, pace it, send it
through its channel's sender, retry what provably was not sent, record one outcome each.

At most once: a claim is durable before the provider call; a send whose fate is unknown
stays claimed and ends "in doubt", never repeated (``dispatcher.ledger``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import anyio
from anyio.abc import ObjectReceiveStream

from dispatcher.channels.base import Message, Sender, SendResult
from dispatcher.chunking import Chunk
from dispatcher.eligibility import AddressSet
from dispatcher.errors import SendError, StorageError
from dispatcher.ledger import Claim, SendClaim
from dispatcher.model import Definition, Outcome, Record, Status
from dispatcher.render import RenderFailed
from dispatcher.stages import EXPIRED_REASON, Route, SendBatch, Stages


async def send_worker(s: Stages, batch_rx: ObjectReceiveStream[SendBatch]) -> None:
    """Render each endpoint's message and deliver it through its channel's sender."""
    async with batch_rx:
        async for batch in batch_rx:
            if s.stopping():
                continue
            if s.expired():
                await s.record(
                    [Outcome.of(r, Status.EXPIRED, EXPIRED_REASON) for r, _ in batch.items]
                )
                continue
            by_route, failed = _render(s, batch)
            if failed:
                await s.record([f[0] for f in failed], definitions=[f[1] for f in failed])
            claimed = await _claim_first_parts(s, by_route) if s.ledger is not None else {}
            for key, messages in by_route.items():
                await deliver(s, s.routes[key], messages, claimed=claimed.get(key))


def _render(
    s: Stages, batch: SendBatch
) -> tuple[dict[tuple[str, str], list[Message]], list[tuple[Outcome, Definition]]]:
    """Each endpoint's message, by route; an endpoint whose message cannot be rendered
    (strict mode, a helper refusing its value) fails alone, PERMANENT_FAILURE."""
    by_route: dict[tuple[str, str], list[Message]] = {}
    failed: list[tuple[Outcome, Definition]] = []
    empty = s.empty_variables
    missing: list[str] | None = [] if empty is not None else None
    for record, definition in batch.items:
        key = (batch.treatment, definition["ChannelType"])
        composer = s.routes[key].composer
        endpoint_id = record.endpoint_id or ""
        try:
            title, body, html_body = composer.compose(endpoint_id, definition, missing)
            headers = composer.render_headers(endpoint_id, definition)
        except RenderFailed as exc:
            failed.append((Outcome.of(record, Status.PERMANENT_FAILURE, exc.reason), definition))
            continue
        finally:
            if empty is not None and missing is not None:
                empty.count(composer, missing)
                missing.clear()
        by_route.setdefault(key, []).append(
            Message(
                endpoint_id, record.line, key[1], definition["Address"].strip(), title, body,
                html_body, batch.treatment, definition, composer.template, headers,
            )
        )  # fmt: skip
    return by_route, failed


def _backoff(attempt: int, hint: float | None) -> float:
    if hint is not None:
        return min(hint, 30.0)
    return random.uniform(0, min(5.0, 0.25 * 2**attempt))


def _part_size(route: Route) -> int:
    """No batch larger than the limiter grants now (a shared ceiling's share may be small)."""
    return max(1, min(route.sender.max_batch, route.max_grant, route.limiter.max_grant))


async def _claim_first_parts(
    s: Stages, by_route: dict[tuple[str, str], list[Message]]
) -> dict[tuple[str, str], tuple[int, list[Message]]]:
    """Group commit: claim the first part of every route of a batch in one ledger call
    (one transaction, not one per route), before any of them is sent. Only the first
    part: what waits behind a rate limiter is claimed when its turn comes, so a crash
    leaves no more than one part per route in doubt. Per route: (messages claimed, those
    granted)."""
    assert s.ledger is not None
    firsts: list[tuple[tuple[str, str], list[Message]]] = []
    claims: list[SendClaim] = []
    for key, messages in by_route.items():
        route = s.routes[key]
        first = messages[: _part_size(route)]
        firsts.append((key, first))
        name = route.sender_name
        claims.extend([SendClaim(m.endpoint_id, m.line, name) for m in first])
    answers = await s.ledger.claim(s.run_id, claims)
    out: dict[tuple[str, str], tuple[int, list[Message]]] = {}
    settled: list[Outcome] = []
    at = 0
    for key, first in firsts:
        granted = _settle_claims(first, answers[at : at + len(first)], settled)
        at += len(first)
        out[key] = (len(first), granted)
    if settled:
        await s.record(settled)
    return out


async def deliver(
    s: Stages,
    route: Route,
    messages: list[Message],
    *,
    claimed: tuple[int, list[Message]] | None = None,
) -> None:
    """Send with retries for provably unsent messages; record one outcome per message.

    ``claimed``: the first ``n`` messages were claimed already, these were granted."""
    pending = messages
    for attempt in range(1, s.send_attempts + 1):
        retry: list[Message] = []
        hint: float | None = None
        size = _part_size(route)
        for part, unclaimed in _parts(pending, size, claimed if attempt == 1 else None):
            if attempt == 1 and unclaimed:
                part = await (_claim(s, route.sender_name, part) if s.ledger is not None
                              else _claim_in_memory(s, part))  # fmt: skip
            if not part:
                continue
            # Held until the send returns: its requests count in the ceiling's window until
            # then (a PacedSender's route holds NoLimit: it takes a permit per request).
            with await route.limiter.acquire(len(part)):
                if s.timeline is not None:
                    s.timeline.sent(len(part), part[0].channel_type)
                results = await _send(route.sender, part)
            if s.timeline is not None:
                throttled = sum(r.status is Status.THROTTLED for r in results)
                if throttled:
                    s.timeline.throttled(throttled)
            final: list[Outcome] = []
            final_messages: list[Message] = []
            release: list[str] = []
            sent: list[tuple[str, str]] = []
            for m, r in zip(part, results, strict=True):
                if r.status is Status.SUCCESS:
                    final.append(_outcome(m, Status.SUCCESS, None))
                    final_messages.append(m)
                    sent.append((m.endpoint_id, s.campaign_id))
                    continue
                if r.retryable and attempt < s.send_attempts:
                    retry.append(m)
                    if r.status is Status.THROTTLED:
                        route.limiter.throttled(r.retry_after)
                    if r.retry_after is not None:
                        hint = max(hint or 0.0, r.retry_after)
                    continue
                final.append(_outcome(m, r.status, r.reason or r.status.value))
                final_messages.append(m)
                if r.retryable or r.unsent or r.status is Status.PERMANENT_FAILURE:
                    release.append(m.endpoint_id)  # provably not sent: retry may try again
            await s.record(final, release=release, sent=sent,
                           definitions=[m.definition for m in final_messages])  # fmt: skip
        if not retry:
            return
        await anyio.sleep(_backoff(attempt, hint))
        pending = retry


IN_DOUBT_REASON = "send in doubt: an earlier attempt of this run may have sent it; not re-sent"


def _parts(
    pending: list[Message], size: int, claimed: tuple[int, list[Message]] | None
) -> Iterator[tuple[list[Message], bool]]:
    """(part, still to claim) in ``size`` slices; what ``claimed`` covers comes first."""
    if claimed is not None:
        done, granted = claimed
        for start in range(0, len(granted), size):
            yield granted[start : start + size], False
        pending = pending[done:]
    for start in range(0, len(pending), size):
        yield pending[start : start + size], True


async def _claim(s: Stages, sender_name: str, part: list[Message]) -> list[Message]:
    """Claim endpoints in the ledger before sending; settle those already claimed."""
    assert s.ledger is not None
    answers = await s.ledger.claim(
        s.run_id, [SendClaim(m.endpoint_id, m.line, sender_name) for m in part]
    )
    settled: list[Outcome] = []
    granted = _settle_claims(part, answers, settled)
    if settled:
        await s.record(settled)
    return granted


def _settle_claims(
    part: list[Message], answers: list[Claim], settled: list[Outcome]
) -> list[Message]:
    """The granted messages; an outcome in ``settled`` for each of the others."""
    granted: list[Message] = []
    for m, answer in zip(part, answers, strict=True):
        if answer is Claim.GRANTED:
            granted.append(m)
        elif answer is Claim.SENT:
            settled.append(_outcome(m, Status.SUCCESS, None))
        elif answer is Claim.IN_DOUBT:
            settled.append(_outcome(m, Status.TEMPORARY_FAILURE, IN_DOUBT_REASON))
        else:
            settled.append(_outcome(m, Status.INVALID, OTHER_LINE_REASON))
    return granted


OTHER_LINE_REASON = "endpoint Id already used by another record of this segment"


async def _claim_in_memory(s: Stages, part: list[Message]) -> list[Message]:
    """Without a ledger, an endpoint Id is still sent once per run (the first record)."""
    if s.claimed_ids is None:
        s.claimed_ids = AddressSet()
    claimed = s.claimed_ids
    granted = [m for m in part if claimed.add(m.endpoint_id)]
    if len(granted) < len(part):
        kept = {id(m) for m in granted}
        await s.record([_outcome(m, Status.INVALID, OTHER_LINE_REASON)
                        for m in part if id(m) not in kept])  # fmt: skip
    return granted


async def claim_chunk(s: Stages, chunk: Chunk) -> dict[str, Record]:
    """DELIVERY mode: claim a chunk's endpoints; the chunk keeps only granted ones."""
    as_messages = [
        Message(eid, r.line, r.channel_type or "", "", None, None, treatment_id=chunk.treatment)
        for eid, r in chunk.records.items()
    ]
    claim = _claim(s, "hook", as_messages) if s.ledger is not None else _claim_in_memory(
        s, as_messages)  # fmt: skip
    granted = {m.endpoint_id for m in await claim}
    chunk.records = {eid: r for eid, r in chunk.records.items() if eid in granted}
    return chunk.records


async def _send(sender: Sender, part: list[Message]) -> list[SendResult]:
    """Call a sender; a sender that breaks its contract fails these messages, not the run."""
    try:
        results = await sender.send(part)
    except StorageError:
        raise  # the run's own files (the outbox) cannot be written: stop, nothing is lost
    except SendError as exc:  # the sender is unusable (e.g. no credentials): nothing left
        reason = f"sender unusable, not sent: {exc}"
        return [SendResult(Status.TEMPORARY_FAILURE, reason, unsent=True) for _ in part]
    except Exception as exc:  # a provider bug must not lose the rest of the run
        reason = f"sender error, outcome unknown, not retried: {type(exc).__name__}: {exc}"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    if len(results) != len(part):
        reason = f"sender returned {len(results)} results for {len(part)} messages"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    return results


def _outcome(m: Message, status: Status, reason: str | None) -> Outcome:
    return Outcome(m.line, m.endpoint_id, status, reason, m.channel_type, m.treatment_id)
