"""AIP-158 page tokens and bounded pages for the StateBackend's list RPCs.

A token is base64url JSON: [version, rpc, scope digest, cursor]. The scope digest binds it to
the request's other fields (app, invocation, filters), so a token sent to another RPC or with
other filters is refused instead of silently listing from a wrong place. The cursor is the
store's keyset position of the last item returned (never an offset), so items added between
pages shift nothing. Tokens are not secret: a forged one can only point inside the caller's
own request scope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pynenc_sidecar.core.errors import InvalidArgument

T = TypeVar("T")
R = TypeVar("R")

TOKEN_VERSION = 1
# A page stops growing past this many payload bytes (at least one item is always sent), so
# that no reply nears gRPC's default 4 MiB receive limit unless one item alone is larger, and
# building one reply holds the event loop only a few milliseconds (other calls wait behind it).
REPLY_BUDGET_BYTES = 256 * 1024
# A page is read from the store and decoded in slices of this many items, the event loop
# free between slices: one slice holds it well under a millisecond on an idle core, so a
# small call queued behind a huge read waits for one slice, not for the whole page.
SLICE_ITEMS = 64
_BAD = "is not a next_page_token of this RPC: send one back unchanged, or none for the first page"
_FOREIGN = ("was issued for another request: send it to the same RPC with the same other fields as the "
            "request that returned it, or send none to start again")


def page_size(value: int, default: int, maximum: int, field: str = "page_size") -> int:
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(field, f"must be between 1 and {maximum} (0 for {default}), got {value}")
    return value


def _digest(scope: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(scope)).encode()).hexdigest()[:16]


def encode_token(rpc: str, scope: Sequence[str], cursor: Any) -> str:
    text = json.dumps([TOKEN_VERSION, rpc, _digest(scope), cursor], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, rpc: str, scope: Sequence[str], valid: Callable[[Any], bool]) -> Any | None:
    """The cursor of a page token, None for no token; INVALID_ARGUMENT naming page_token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
        version, token_rpc, digest, cursor = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise InvalidArgument("page_token", _BAD) from None
    if version != TOKEN_VERSION or not isinstance(token_rpc, str) or not valid(cursor):
        raise InvalidArgument("page_token", _BAD)
    if token_rpc != rpc or digest != _digest(scope):
        raise InvalidArgument("page_token", _FOREIGN)
    return cursor


def is_text(cursor: Any) -> bool:
    return isinstance(cursor, str) and bool(cursor)


def is_ints(count: int) -> Callable[[Any], bool]:
    def valid(cursor: Any) -> bool:
        return (isinstance(cursor, list) and len(cursor) == count
                and all(isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in cursor))
    return valid


def bounded(items: list[T], size: Callable[[T], int], page: int) -> tuple[list[T], bool]:
    """The first items that fit `page` and the reply budget (at least one), and whether any
    were left out. `items` may hold one more than `page`, to tell whether more follow."""
    kept: list[T] = []
    total = 0
    for item in items[:page]:
        total += size(item)
        if kept and total > REPLY_BUDGET_BYTES:
            break
        kept.append(item)
    return kept, len(kept) < len(items)


async def decoded(items: Sequence[T], decode: Callable[[T], R], every: int = SLICE_ITEMS) -> list[R]:
    """[decode(item) for item in items], giving the event loop a turn every `every` items."""
    out: list[R] = []
    for start in range(0, len(items), every):
        if start:
            await asyncio.sleep(0)
        out.extend(decode(item) for item in items[start:start + every])
    return out


async def filled(fetch: Callable[[int, T | None], Awaitable[list[T]]], size: Callable[[T], int], page: int,
                 after: T | None = None, every: int = 2 * SLICE_ITEMS) -> tuple[list[T], bool]:
    """`bounded` over a store read in steps: fetch(limit, after_item) returns up to `limit`
    items after `after_item` (None: from the start). The first step reads `every` items, the
    next about what the rest of the byte budget holds at the sizes seen, so a page cut by the
    budget after 400 items reads ~400 in two round trips, not `page` + 1 in one; each round
    trip frees the event loop."""
    kept: list[T] = []
    total = 0
    want = min(every, page)
    while True:
        items = await fetch(want + 1, kept[-1] if kept else after)
        for item in items[:want]:
            total += size(item)
            if kept and total > REPLY_BUDGET_BYTES:
                return kept, True
            kept.append(item)
        if len(items) <= want:
            return kept, False
        if len(kept) >= page:
            return kept, True
        # Next, about what the rest of the budget holds at the sizes seen so far (+1 for luck).
        fits = (REPLY_BUDGET_BYTES - total) * len(kept) // max(total, 1) + 1
        want = max(1, min(page - len(kept), fits))
