"""Keyset paging of a Redis zset in (score, member) order: the one paging function both Redis
stores use (runs, the history timeline).

Paged from the last (score, member) seen, not by offsets: members added or removed meanwhile
shift no page, so nothing is repeated or skipped; and each page costs O(log n + size) however
many members share the cursor's score (SCORE_PAGE finds the cursor's rank by ZRANK, or by a
binary search among the members of its score when the cursor's member is gone)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pynenc_sidecar.storage.interface import Cursor
from pynenc_sidecar.storage.redis.connection import DecodedRedis, redis_unavailable

# KEYS: the zset. ARGV: low, high, size, then the cursor's score and member (none: from low).
SCORE_PAGE = """
local key, size = KEYS[1], tonumber(ARGV[3])
local function number(text)
  if text == '+inf' then return math.huge elseif text == '-inf' then return -math.huge end
  return tonumber(text)
end
-- Byte order, as Redis orders members (Lua's own < follows the locale).
local function at_or_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local start
if #ARGV < 5 then
  start = redis.call('ZCOUNT', key, '-inf', '(' .. ARGV[1])
else
  local score, member = ARGV[4], ARGV[5]
  local rank = redis.call('ZRANK', key, member)
  if rank and number(redis.call('ZSCORE', key, member)) == number(score) then
    start = rank + 1
  else
    local low = redis.call('ZCOUNT', key, '-inf', '(' .. score)
    local high = redis.call('ZCOUNT', key, '-inf', score)
    while low < high do
      local mid = math.floor((low + high) / 2)
      if at_or_before(redis.call('ZRANGE', key, mid, mid)[1], member) then low = mid + 1 else high = mid end
    end
    start = low
  end
end
local high, out = number(ARGV[2]), {}
local rows = redis.call('ZRANGE', key, start, start + size - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  if number(rows[i + 1]) > high then break end
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
end
return out
"""


class ScorePager:
    """Pages zsets of one client (its script registered there)."""

    def __init__(self, client: DecodedRedis) -> None:
        self._score_page = client.register_script(SCORE_PAGE)

    async def page(self, key: str, low: str, high: str, size: int, after: Cursor | None
                   ) -> list[tuple[str, float]]:
        """Up to `size` (member, score) in [low, high] after the cursor, in zset order."""
        args: list[str | int] = [low, high, max(1, size)]
        if after is not None:
            args += [repr(float(after[0])), after[1]]
        with redis_unavailable():  # also when called from a generator's body
            flat = await self._score_page(keys=[key], args=args)
        return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def pages(self, key: str, low: str, high: str, size: int) -> AsyncIterator[list[tuple[str, float]]]:
        """Every (member, score) in [low, high], a page at a time."""
        after: Cursor | None = None
        while page := await self.page(key, low, high, size, after):
            yield page
            after = (page[-1][1], page[-1][0])


async def scan_key_batches(client: DecodedRedis, pattern: str, count: int = 1000) -> AsyncIterator[list[str]]:
    """Every key matching the pattern, in batches of up to `count`; on a cluster, of every
    master (redis-py's cluster client runs SCAN on each)."""
    batch: list[str] = []
    async for key in client.scan_iter(match=pattern, count=count):
        batch.append(key)
        if len(batch) >= count:
            yield batch
            batch = []
    if batch:
        yield batch
