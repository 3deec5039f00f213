"""Send claims by line: one item per page of 2048 lines, claims group-committed.

A page holds two bitmaps, compressed: the lines *claimed* (a send may have left) and
the lines *sent* (the send succeeded). A worker claims a batch of lines with one
read-modify-write of the page under its version (``v``): lines not yet claimed are set
and GRANTED; lines claimed already are SENT when their sent bit (or their stored
outcome) says so, else IN_DOUBT -- never sent again. The put is conditioned on the
version it read, so two workers racing on one shard (SQS delivered it twice) are
serialized by DynamoDB: whoever writes second sees the first one's bits.

Group commit: every claim of one page that arrives while a write of that page is in
flight goes into the next write, with the bits this worker has learnt since (sends that
succeeded, claims released because the send provably failed). So a page write costs
one write unit (the item stays under 1 KB) for everything the worker's send stage
claimed meanwhile, and a send's success is durable by the worker's next claim: a crash
leaves only the sends in flight in doubt.

A write whose answer was lost is sent again by the retry policy and then fails its
condition; each page keeps the tokens of its last 16 writes, so the writer finds its
own token and knows its write landed. A line may be claimed by line only when no other
line of the segment has the same endpoint id (``dispatcher submit`` works that out);
the rest go through endpoint-id claims (``claims``).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from dispatcher.errors import DynamoLedgerError
from dispatcher.ledger.base import Claim
from dispatcher.ledger.dynamodb._items import (
    PAGE_LINES,
    Item,
    b,
    bytes_of,
    int_of,
    n,
    page_key,
)
from dispatcher.ledger.dynamodb._table import ConditionFailed, Table

TOKENS = 16
"""Write tokens a page keeps: enough to recognise one's own write after a lost answer."""
TOKEN_BYTES = 8
_BITMAP = PAGE_LINES // 8


def _pack(bits: bytearray) -> bytes:
    return zlib.compress(bytes(bits), 9) if any(bits) else b""


def _unpack(blob: bytes) -> bytearray:
    return bytearray(zlib.decompress(blob)) if blob else bytearray(_BITMAP)


def _has(bits: bytearray, i: int) -> bool:
    return bool(bits[i >> 3] >> (i & 7) & 1)


def _set(bits: bytearray, i: int) -> None:
    bits[i >> 3] |= 1 << (i & 7)


def _clear(bits: bytearray, i: int) -> None:
    bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF


@dataclass(slots=True)
class _State:
    """A page as stored: version (0: no item yet), bitmaps, recent write tokens."""

    version: int = 0
    claimed: bytearray = field(default_factory=lambda: bytearray(_BITMAP))
    sent: bytearray = field(default_factory=lambda: bytearray(_BITMAP))
    tokens: bytes = b""

    @classmethod
    def of(cls, item: Item | None) -> _State:
        if not item:
            return cls()
        return cls(int_of(item, "v"), _unpack(bytes_of(item, "m")), _unpack(bytes_of(item, "s")),
                   bytes_of(item, "k"))  # fmt: skip

    def copy(self) -> _State:
        return _State(self.version, bytearray(self.claimed), bytearray(self.sent), self.tokens)

    def wrote(self, token: bytes) -> bool:
        t = self.tokens
        return any(t[i : i + TOKEN_BYTES] == token for i in range(0, len(t), TOKEN_BYTES))

    def item(self, key: Item) -> Item:
        item: Item = {**key, "v": n(self.version), "k": b(self.tokens)}
        for name, bits in (("m", self.claimed), ("s", self.sent)):
            packed = _pack(bits)
            if packed:
                item[name] = b(packed)
        return item


@dataclass(slots=True)
class _Request:
    offsets: list[int]
    answers: list[bool] = field(default_factory=list)
    """Per offset: True when granted, False when the line was claimed already."""
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass(slots=True)
class _Page:
    key: Item
    state: _State = field(default_factory=_State)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    queue: list[_Request] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)
    released: set[int] = field(default_factory=set)


class LineClaims:
    """The line pages of every run this ledger touched, and the bits not yet written."""

    def __init__(
        self, table: Table, succeeded: Callable[[str, Iterable[int]], Awaitable[set[int]]]
    ) -> None:
        self.table = table
        self._succeeded = succeeded
        self._pages: dict[tuple[str, int], _Page] = {}
        self.granted: dict[str, set[int]] = {}
        """Lines this ledger was granted and has not yet recorded a result for."""

    def _page(self, run_id: str, page: int) -> _Page:
        found = self._pages.get((run_id, page))
        if found is None:
            found = self._pages[(run_id, page)] = _Page(page_key(run_id, page))
        return found

    def pending(self) -> bool:
        return any(p.sent or p.released for p in self._pages.values())

    # -- marks -------------------------------------------------------------------------
    def mark(self, run_id: str, *, sent: Iterable[int] = (), released: Iterable[int] = ()) -> None:
        """Remember results of granted lines; they go with the page's next write."""
        granted = self.granted.get(run_id, set())
        for line in sent:
            page = self._page(run_id, line // PAGE_LINES)
            page.sent.add(line % PAGE_LINES)
            page.released.discard(line % PAGE_LINES)
            granted.discard(line)
        for line in released:
            self._page(run_id, line // PAGE_LINES).released.add(line % PAGE_LINES)
            granted.discard(line)

    # -- claims ------------------------------------------------------------------------
    async def claim(self, run_id: str, lines: Sequence[int]) -> list[Claim]:
        """Claim ``lines`` (one answer each, in order; a line given twice is IN_DOUBT
        the second time). With them goes every bit this ledger has learnt, on every
        page, so that earlier successes are durable before these sends."""
        by_page: dict[int, _Request] = {}
        for line in lines:
            by_page.setdefault(line // PAGE_LINES, _Request([])).offsets.append(
                line % PAGE_LINES)  # fmt: skip
        jobs: list[tuple[_Page, _Request | None]] = [
            (self._page(run_id, number), request) for number, request in by_page.items()
        ]
        jobs += [
            (page, None)
            for (run, number), page in self._pages.items()
            if (page.sent or page.released) and not (run == run_id and number in by_page)
        ]

        async def one(job: tuple[_Page, _Request | None]) -> None:
            await self._submit(*job)

        await self.table.each(one, jobs)
        answers = {number: iter(request.answers) for number, request in by_page.items()}
        free = [next(answers[line // PAGE_LINES]) for line in lines]
        taken = [line for line, ok in zip(lines, free, strict=True) if not ok]
        sent = await self._sent(run_id, taken) if taken else set()
        mine = self.granted.setdefault(run_id, set())
        mine.update(line for line, ok in zip(lines, free, strict=True) if ok)
        return [Claim.GRANTED if ok else Claim.SENT if line in sent else Claim.IN_DOUBT
                for line, ok in zip(lines, free, strict=True)]  # fmt: skip

    async def flush(self) -> None:
        """Write every page with bits not yet written."""
        jobs = [page for page in self._pages.values() if page.sent or page.released]

        async def one(page: _Page) -> None:
            await self._submit(page, None)

        await self.table.each(one, jobs)

    async def _sent(self, run_id: str, lines: list[int]) -> set[int]:
        """Of claimed lines, those known sent: the page's sent bit, else the outcome."""
        found = set()
        for line in lines:
            if _has(self._page(run_id, line // PAGE_LINES).state.sent, line % PAGE_LINES):
                found.add(line)
        rest = [line for line in lines if line not in found]
        if rest:
            found |= await self._succeeded(run_id, rest)
        return found

    async def _submit(self, page: _Page, request: _Request | None) -> None:
        """Queue ``request`` (None: only the marks) and see it written: whoever holds the
        page's lock writes everything queued; the others wait for the lock and find
        their request done."""
        if request is not None:
            page.queue.append(request)
        try:
            async with page.lock:
                if request is None or not request.done.is_set():
                    # One turn of the event loop: claims started together share the write.
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                    await self._commit(page, request)
        except BaseException:
            if request is not None and request in page.queue:
                page.queue.remove(request)  # cancelled before any write took it
            raise
        if request is not None and request.error is not None:
            raise request.error

    async def _commit(self, page: _Page, mine: _Request | None) -> None:
        requests, page.queue = page.queue, []
        sent, released = page.sent, page.released
        page.sent, page.released = set(), set()
        try:
            await self._write(page, requests, sent, released)
        except Exception as exc:
            page.sent |= sent  # they go with a later write
            for r in requests:
                r.error = exc
                r.done.set()
            raise
        except BaseException:
            # Cancelled mid-write: whether it landed is unknown. Sent bits go with a later
            # write; the other claimers' requests go back to the queue, and the next
            # writer answers them from what is stored then (a line this write did claim
            # is then IN_DOUBT: never sent twice). A release is dropped: had it landed,
            # doing it again could free a line a later claim holds; left undone, the
            # line stays claimed, which is safe.
            page.sent |= sent
            page.queue[:0] = [r for r in requests if r is not mine]
            raise
        for r in requests:
            r.done.set()

    async def _write(
        self, page: _Page, requests: list[_Request], sent: set[int], released: set[int]
    ) -> None:
        token = os.urandom(TOKEN_BYTES)
        state = page.state
        for _ in range(self.table.attempts * 4):
            new = state.copy()
            for i in released:
                if not _has(new.sent, i):
                    _clear(new.claimed, i)
            for i in sent:
                _set(new.claimed, i)
                _set(new.sent, i)
            for r in requests:
                r.answers = []
                for i in r.offsets:
                    free = not _has(new.claimed, i)
                    if free:
                        _set(new.claimed, i)
                    r.answers.append(free)
            if new.claimed == state.claimed and new.sent == state.sent:
                page.state = state
                return  # nothing new to write: every line was claimed already
            new.version = state.version + 1
            new.tokens = (state.tokens + token)[-TOKENS * TOKEN_BYTES :]
            condition = "attribute_not_exists(pk)" if state.version == 0 else "v = :v"
            values = None if state.version == 0 else {":v": n(state.version)}
            try:
                await self.table.put(new.item(page.key), condition, values)
            except ConditionFailed as exc:
                current = _State.of(exc.item or await self.table.get(page.key))
                if current.wrote(token):
                    page.state = current  # our write landed; its answer was lost
                    return
                if exc.retried:
                    # A try whose answer was lost may have landed after all, its token
                    # since pushed out: do not release again (see _commit).
                    released = set()
                state = current
                continue
            page.state = new
            return
        raise DynamoLedgerError("a line page kept changing under its claims; gave up",
                                operation="PutItem")  # fmt: skip
