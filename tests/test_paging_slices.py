"""Pages are read in steps and decoded in slices (issue 12, case 1: other calls' latency
during a huge read): `filled` returns what `bounded` would from the whole list, reading about
what the reply budget holds instead of `page` + 1 items, and `decoded` gives the event loop a
turn between slices so a small call queued behind a page waits for one slice."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from pynenc_sidecar.service import paging


def run_filled(sizes: list[int], page: int, start: int | None) -> tuple[list[int], bool, int]:
    fetched = 0

    async def fetch(limit: int, after: int | None) -> list[int]:
        nonlocal fetched
        first = 0 if after is None else after + 1
        items = list(range(first, min(first + limit, len(sizes))))
        fetched += len(items)
        return items

    kept, more = asyncio.run(paging.filled(fetch, lambda i: sizes[i], page, start))
    return kept, more, fetched


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40_000), max_size=600), st.integers(1, 1000), st.integers(-1, 50))
def test_a_page_read_in_steps_is_the_page_bounded_returns(sizes: list[int], page: int, start: int) -> None:
    after = None if start < 0 else start
    first = 0 if after is None else after + 1
    expected = paging.bounded(list(range(first, len(sizes)))[:page + 1], lambda i: sizes[i], page)
    kept, more, _ = run_filled(sizes, page, after)
    assert (kept, more) == expected


def test_a_page_cut_by_the_byte_budget_reads_about_what_it_returns() -> None:
    sizes = [650] * 100_000  # the history entries: ~400 fit the 256 KiB budget
    kept, more, fetched = run_filled(sizes, 1000, None)
    assert more and len(kept) == paging.REPLY_BUDGET_BYTES // 650
    assert fetched <= len(kept) + 2 * paging.SLICE_ITEMS  # not the 1001 one read would take


def test_decoding_a_page_lets_other_calls_run_between_slices() -> None:
    order: list[str] = []

    async def main() -> list[int]:
        async def small_call() -> None:
            order.append("small call")

        task = asyncio.get_running_loop().create_task(small_call())
        out = await paging.decoded(list(range(10 * paging.SLICE_ITEMS)),
                                   lambda i: order.append("decoded") or i)
        await task
        return out

    assert asyncio.run(main()) == list(range(10 * paging.SLICE_ITEMS))
    # The small call ran after the first slice, not after all ten.
    assert order.index("small call") == paging.SLICE_ITEMS
