"""Candle fetching: retries, batch validation and, in backtests, a per-(symbol, interval) cache.

Backtests fetch large chunks once and slice them; the time windows handed to strategies are
the same as if every request went to the exchange (D1: only closed candles are visible).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from ._candles import Candles, check_batch, check_batch_lenient, rolling_vwap, to_candles, vwap
from ._config import cfg
from ._schema import ExchangeSchema, callback
from ._time import MINUTE_MS, interval_ms, iso, to_datetime
from .errors import CandleError

_BATCH_INDEX = re.compile(r"^candle #\d+ \([^)]*\) ")
CHUNK = 20_000  # candles of the first cache fill; each later fill asks for twice as many

T = TypeVar("T")


async def maybe_await(value: Awaitable[T] | T) -> T:
    """The value, awaited first when it is awaitable (user code may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


class _Series:
    """Cached candles of one (symbol, interval) covering [lo, hi) in time."""

    __slots__ = ("c", "lo", "hi", "step", "_t0", "_n", "_contiguous", "_vwap", "_vwap_n", "bad", "_bad_ts")

    def __init__(self, step: int) -> None:
        self.c = Candles.empty()
        self.lo = self.hi = 0
        self.step = step
        self._t0 = 0
        self._n = 0
        self._contiguous = True
        self._vwap: np.ndarray | None = None
        self._vwap_n = 0
        self.bad: dict[int, str] = {}  # open time -> why the exchange's candle is invalid
        self._bad_ts: np.ndarray | None = None

    def check(self, start: int, end: int) -> None:
        """Refuse a window [start, end) that holds an invalid candle (CandleError saying why)."""
        if self._bad_ts is not None:
            i = int(np.searchsorted(self._bad_ts, start))
            if i < len(self._bad_ts) and self._bad_ts[i] < end:
                raise CandleError(self.bad[int(self._bad_ts[i])])

    def index(self, t: int) -> int:
        """Position of the first candle with open time >= t (arithmetic when gap-free)."""
        if self._contiguous:
            k = -(-(t - self._t0) // self.step)
            return 0 if k < 0 else (k if k < self._n else self._n)
        return int(np.searchsorted(self.c.timestamp, t))

    def _reindex(self) -> None:
        ts = self.c.timestamp
        self._n = len(ts)
        self._t0 = int(ts[0]) if self._n else 0
        self._contiguous = self._n == 0 or int(ts[-1]) - self._t0 == (self._n - 1) * self.step

    def add(self, c: Candles, lo: int, hi: int, bad: dict[int, str] | None = None) -> None:
        for t, why in (bad or {}).items():
            if not self.lo <= t < self.hi or self.lo == self.hi:
                self.bad[t] = why
        if self.bad:
            self._bad_ts = np.array(sorted(self.bad), dtype=np.int64)
        if self.lo == self.hi:
            self.c, self.lo, self.hi = c, lo, hi
        else:
            parts: list[Candles] = []
            if lo < self.lo:
                parts.append(c[: int(np.searchsorted(c.timestamp, self.lo))])
            parts.append(self.c)
            if hi > self.hi:
                parts.append(c[int(np.searchsorted(c.timestamp, self.hi)):])
            self.c = Candles.concat(parts)
            self.lo, self.hi = min(lo, self.lo), max(hi, self.hi)
        self._reindex()
        self._vwap = None

    def vwap_array(self, n: int) -> np.ndarray:
        if self._vwap is None or self._vwap_n != n:
            self._vwap, self._vwap_n = rolling_vwap(self.c, n), n
        return self._vwap


class ExchangeClient:
    """One exchange as seen by one run. `backtest=True` enables the chunk cache."""

    def __init__(self, schema: ExchangeSchema, *, backtest: bool,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.schema = schema
        self.name = schema.exchange_name
        self.backtest = backtest
        self._sleep = sleep
        self._now_ms = now_ms
        self._series: dict[tuple[str, str], _Series] = {}
        self._chunk = CHUNK
        self._on_candle_data = callback(schema.callbacks, "on_candle_data")

    # --- raw fetch ---------------------------------------------------------------------

    async def fetch(self, symbol: str, interval: str, since: int, limit: int) -> Candles:
        """Ask the exchange once per attempt; validate; retry; raise CandleError naming the call."""
        return (await self._fetch(symbol, interval, since, limit, lenient=False))[0]

    async def fetch_lenient(self, symbol: str, interval: str, since: int,
                            limit: int) -> tuple[Candles, dict[int, str]]:
        """fetch for cache fills: when the last attempt still has invalid candles, keep them and
        return (candles, {time: reason}), so only windows that contain one fail, as if each
        window had been fetched on its own."""
        return await self._fetch(symbol, interval, since, limit, lenient=True)

    async def _fetch(self, symbol: str, interval: str, since: int, limit: int,
                     lenient: bool) -> tuple[Candles, dict[int, str]]:
        """fetch / fetch_lenient; without `lenient` the reasons are always empty."""
        attempts = cfg.CC_GET_CANDLES_RETRY_COUNT
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                raw = await maybe_await(self.schema.get_candles(symbol, interval, to_datetime(since), limit))
                batch = to_candles(raw)
                median_min = cfg.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN
                factor = cfg.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR
                bad: dict[int, str]
                if lenient:
                    c, bad = check_batch_lenient(batch, median_min=median_min, anomaly_factor=factor)
                else:
                    c, bad = check_batch(batch, median_min=median_min, anomaly_factor=factor), {}
                if bad and attempt + 1 < attempts:  # a bad batch is retried first, as any other
                    raise ValueError(next(iter(bad.values())))
                if len(c) and c.timestamp[0] < since:
                    c = c[int(np.searchsorted(c.timestamp, since)):]
                if self._on_candle_data is not None:
                    await maybe_await(self._on_candle_data(symbol, interval, to_datetime(since), limit, c))
                return c, {t: f"exchange {self.name!r}: candle of symbol={symbol!r}, interval={interval!r} "
                              f"at {iso(t)} is invalid: {_BATCH_INDEX.sub('', why)}" for t, why in bad.items()}
            except Exception as e:  # noqa: BLE001 - any exchange failure is retried
                last = e
                if attempt + 1 < attempts:
                    await self._sleep(cfg.CC_GET_CANDLES_RETRY_DELAY_MS / 1000)
        raise CandleError(
            f"exchange {self.name!r}: get_candles(symbol={symbol!r}, interval={interval!r}, "
            f"since={iso(since)}, limit={limit}) failed after {attempts} attempt(s): {last}") from last

    # --- time windows ------------------------------------------------------------------

    async def range(self, symbol: str, interval: str, start: int, end: int) -> Candles:
        """Candles with start <= open time < end (cached in backtests)."""
        step = interval_ms(interval)
        if end <= start:
            return Candles.empty()
        if not self.backtest:
            c = await self.fetch(symbol, interval, start, -(-(end - start) // step))
            return c[: int(np.searchsorted(c.timestamp, end))]
        s = await self._covered(symbol, interval, start, end)
        s.check(start, end)
        return s.c[s.index(start): s.index(end)]

    async def _covered(self, symbol: str, interval: str, start: int, end: int) -> _Series:
        s = self._series.get((symbol, interval))
        if s is not None and s.lo <= start and end <= s.hi:
            return s
        step = interval_ms(interval)
        if s is None:
            s = self._series[(symbol, interval)] = _Series(step)
        # Never cache candles that have not closed yet (wall clock), so a backtest up to "now"
        # cannot see a forming candle.
        horizon = (self._now_ms() // step) * step
        end = min(end, max(start, horizon))
        if s.lo == s.hi:
            await self._fill(s, symbol, interval, start, end, step)
        if start < s.lo:
            await self._fill(s, symbol, interval, start, s.lo, step, exact=True)
        while end > s.hi:
            await self._fill(s, symbol, interval, s.hi, end, step)
        return s

    async def _fill(self, s: _Series, symbol: str, interval: str, start: int, end: int, step: int,
                    exact: bool = False) -> None:
        """Fetch [start, end) (a whole chunk unless `exact`) and record what it covers."""
        if exact:  # backward extension: page until the gap before the cache is closed
            got: list[Candles] = []
            at = start
            bad: dict[int, str] = {}
            while at < end:
                c, more = await self.fetch_lenient(symbol, interval, at, -(-(end - at) // step))
                c = c[: int(np.searchsorted(c.timestamp, end))]
                if not len(c):
                    break
                got.append(c)
                bad.update(more)
                at = int(c.timestamp[-1]) + step
            s.add(Candles.concat(got), start, end, bad)
            return
        horizon = (self._now_ms() // step) * step
        limit = max(-(-(end - start) // step), min(self._chunk, max(1, (horizon - start) // step)))
        self._chunk = min(self._chunk * 2, 1_000_000)  # few fills, so few rolling-VWAP rebuilds
        c, bad = await self.fetch_lenient(symbol, interval, start, limit)
        # A short page may be an exchange's own cap: cover only what came back and ask again.
        s.add(c, start, int(c.timestamp[-1]) + step if len(c) else start + limit * step, bad)

    async def window(self, symbol: str, interval: str, when: int, limit: int) -> Candles:
        """The `limit` closed candles before `when` (D1): [aligned - limit*step, aligned)."""
        step = interval_ms(interval)
        aligned = when // step * step
        start = aligned - limit * step
        s = self._series.get((symbol, interval)) if self.backtest else None
        if s is not None and s.lo <= start and aligned <= s.hi:  # the common, cached case
            s.check(start, aligned)
            return s.c[s.index(start): s.index(aligned)]
        return await self.range(symbol, interval, start, aligned)

    async def average_price(self, symbol: str, when: int) -> float:
        """VWAP of the last CC_AVG_PRICE_CANDLES_COUNT closed 1m candles at `when`."""
        n = cfg.CC_AVG_PRICE_CANDLES_COUNT
        aligned = when // MINUTE_MS * MINUTE_MS
        start = aligned - n * MINUTE_MS
        if self.backtest:
            s = self._series.get((symbol, "1m"))
            if s is None or not (s.lo <= start and aligned <= s.hi):
                s = await self._covered(symbol, "1m", start, aligned)
            s.check(start, aligned)
            lo, hi = s.index(start), s.index(aligned)
            if hi - lo == n:
                return float(s.vwap_array(n)[hi - 1])
            c = s.c[lo:hi]
        else:
            c = await self.range(symbol, "1m", start, aligned)
        if not len(c):
            raise CandleError(f"exchange {self.name!r}: no closed 1m candles for {symbol} "
                              f"before {iso(when)} to price it (window {iso(start)} .. {iso(aligned)})")
        return vwap(c)

    async def minute_series(self, symbol: str, start: int, count: int) -> tuple[Candles, np.ndarray]:
        """The first `count` 1m candles from `start` that open by start + count minutes, as the
        exchange would answer get_candles(since=start, limit=count) (a gap never stretches the
        window further), plus their rolling VWAP (for the backtest fast path)."""
        n = cfg.CC_AVG_PRICE_CANDLES_COUNT
        end = start + count * MINUTE_MS
        s = await self._covered(symbol, "1m", start, end + 1)
        lo = s.index(start)
        hi = min(lo + count, s.index(end + 1))
        if hi > lo:
            s.check(start, int(s.c.timestamp[hi - 1]) + 1)
        c = s.c[lo:hi]
        if len(c) and int(c.timestamp[-1]) - int(c.timestamp[0]) == (len(c) - 1) * MINUTE_MS:
            v = s.vwap_array(n)[lo:hi].copy()  # contiguous: the cached rolling VWAP applies
        else:
            v = rolling_vwap(c, n)
        # The first n-1 candles have fewer than n predecessors *in this window*: their VWAP is
        # over c[0..k] only, never over cached candles from before `start` (across a data gap).
        for k in range(min(n - 1, len(c))):
            v[k] = vwap(c[: k + 1])
        return c, v

    async def format_price(self, symbol: str, price: float) -> str:
        fn = self.schema.format_price
        return str(price) if fn is None else str(await maybe_await(fn(symbol, price)))

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        fn = self.schema.format_quantity
        return str(quantity) if fn is None else str(await maybe_await(fn(symbol, quantity)))
