"""Small calls before bulk pages: at most a few bulk reads build a page at once (issue 12, case 1).

A page of a huge history holds the event loop for a few milliseconds in slices, and every
small call that arrives meanwhile waits for the slices queued before it: with four readers, for
four pages' worth. So the list RPCs whose pages can be large (history pages and streams, app
infos, runner contexts) take a slot here for each page they read and decode; the rest wait in
arrival order, and a small call waits behind the current step of one page (a slice, a store
read), not one per reader. The slot is released before the reply is sent, so a slow client
never holds it.

Waiting is an await like any other: a call whose deadline passes or that its client cancels
while it waits is cancelled by grpc and leaves the queue. Past `queued` waiting reads, a new
one is refused with RESOURCE_EXHAUSTED, so that a burst of huge reads cannot pile up without
bound; a stream already admitted is never refused halfway (its later batches just wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from pynenc_sidecar.core.errors import BULK_READ_QUEUE_FULL, ResourceExhausted

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_CONCURRENT = 1
DEFAULT_QUEUED = 100
WARN_EVERY_S = 10.0  # one warning line per burst of refusals, not one a call


class BulkReads:
    """The turns: `concurrent` slots, and a FIFO of at most `queued` calls waiting for one. A
    slot a call gives up goes straight to the first waiter, so `waiting` is exact at every
    moment: a call refused for a full queue found `queued` others really waiting, not one
    that was woken and had yet to run."""

    def __init__(self, concurrent: int = DEFAULT_CONCURRENT, queued: int = DEFAULT_QUEUED) -> None:
        self.concurrent = concurrent
        self.queued = queued
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._refused = 0
        self._warned_at = -WARN_EVERY_S

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self, admitted: bool = False) -> AsyncIterator[None]:
        """Hold one of the `concurrent` slots; `admitted`: a later page of a call already let in."""
        await self._acquire(admitted)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, admitted: bool) -> None:
        if self._running < self.concurrent and not self._waiters:
            self._running += 1
            return
        if not admitted and len(self._waiters) >= self.queued:
            self._warn()
            raise ResourceExhausted(
                f"{len(self._waiters)} bulk reads are already waiting for the {self.concurrent} running: retry "
                f"later with backoff, or raise the server's --max-queued-bulk-reads",
                reason=BULK_READ_QUEUE_FULL,
                metadata={"waiting": str(len(self._waiters)), "running": str(self.concurrent)})
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot came with the cancellation: pass it on
            elif turn in self._waiters:  # (a release may have dropped it already, as cancelled)
                self._waiters.remove(turn)
            raise

    def _release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot changes hands; _running stays
                return
        self._running -= 1

    def _warn(self) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            log.warning("refused %d bulk read(s) with RESOURCE_EXHAUSTED: %d were waiting for the %d running "
                        "(--max-queued-bulk-reads, --max-concurrent-bulk-reads)", self._refused, len(self._waiters),
                        self.concurrent)
            self._refused, self._warned_at = 0, now

    async def batches(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """`source`'s items, each read while holding a slot (a stream's store reads)."""
        admitted = False
        while True:
            async with self.slot(admitted):
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            admitted = True
            yield item
