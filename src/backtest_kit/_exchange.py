"""Candle fetching: retries that fit the error, paging, the shared in-process cache, a CandleStore in front.

Backtests fetch large chunks once and slice them; the time windows handed to strategies are
the same as if every request went to the exchange (D1: only closed candles are visible). An
empty page is never taken on trust: it is asked again, and where candles are needed the venue
is probed forward, so only what it could have answered counts as "no candles".
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

from . import _state
from ._candles import Candles, WindowVwap, check_batch, check_batch_lenient, rolling_vwap, to_candles, vwap
from ._config import cfg
from ._schema import ExchangeSchema, callback
from ._time import MINUTE_MS, interval_ms, iso, to_datetime
from .errors import CandleError, ValidationError

_BATCH_INDEX = re.compile(r"^candle #\d+ \([^)]*\) ")
_HTTP_STATUS = re.compile(r"^\S+ (\d{3})\b")  # ccxt: "binance 418 I'm a Teapot {...}"
CHUNK = 20_000  # candles of the first cache fill; each later fill asks for twice as many
DEFAULT_STRIDE = 500  # candles an empty page is taken to cover before the venue has shown a page size
MAX_WAIT_S = 600.0  # the longest Retry-After (or ban) waited out; a longer one fails the fetch at once
MAX_BACKOFF_S = 60.0  # cap of one exponential backoff pause (unless the configured delay is longer)
FLUSH_CANDLES = 50_000  # fetched candles held before they are written to a store
DOWNLOAD_FLUSH_CANDLES = 10_000  # the same for `backtest-kit data download` (an interruption loses less)

# ccxt error classes, by name (ccxt is optional): these can never succeed when asked again ...
PERMANENT_ERRORS = frozenset({"BadSymbol", "BadRequest", "AuthenticationError", "PermissionDenied",
                              "AccountSuspended", "NotSupported", "ArgumentsRequired"})
# ... and these are the network family (OperationFailed is ccxt's base of NetworkError and of BadResponse).
TRANSIENT_ERRORS = frozenset({"OperationFailed", "NetworkError", "DDoSProtection", "RateLimitExceeded",
                              "RequestTimeout", "ExchangeNotAvailable", "OnMaintenance", "BadResponse"})

T = TypeVar("T")


async def maybe_await(value: Awaitable[T] | T) -> T:
    """The value, awaited first when it is awaitable (user code may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def default_sleep(seconds: float) -> None:
    """The pause between attempts of a backtest's fetches (tests replace it; live uses its clock)."""
    await asyncio.sleep(max(0.0, seconds))


# --- errors -----------------------------------------------------------------------------------------------


class RetryableError(Exception):
    """Raised by an adapter for an answer worth asking again (e.g. a garbled page ccxt turned into [])."""


class CandleFetchError(CandleError):
    """A candle request failed after its retries, or at once when it cannot succeed (`permanent`)."""

    def __init__(self, message: str, *, exchange: str = "", symbol: str = "", interval: str = "",
                 since: int | None = None, limit: int | None = None, attempts: int = 0,
                 permanent: bool = False, last: BaseException | None = None) -> None:
        super().__init__(message)
        self.exchange, self.symbol, self.interval = exchange, symbol, interval
        self.since, self.limit, self.attempts = since, limit, attempts
        self.permanent = permanent  # live stops on it too: asking again cannot help
        self.last = last


class EndOfData(CandleError):
    """The venue has no candles from here on (found explicitly), or the window is past the wall clock:
    a backtest ends cleanly."""


def error_kind(e: BaseException) -> str:
    """"permanent" (cannot succeed), "transient" (network family: back off and ask again) or "other"
    (asked again; the same failure twice in a row is taken as permanent)."""
    names = {c.__name__ for c in type(e).__mro__}
    if isinstance(e, ValidationError) or names & PERMANENT_ERRORS:
        return "permanent"
    if isinstance(e, OSError | RetryableError) or names & TRANSIENT_ERRORS:  # TimeoutError is an OSError
        return "transient"
    return "other"


def retry_after(e: BaseException) -> float | None:
    """Seconds the venue asked to wait: `e.retry_after` (set by the ccxt adapter from ccxt's
    last_response_headers), else a Retry-After header of `e.headers` / `e.response.headers`."""
    value = getattr(e, "retry_after", None)
    if value is None:
        for headers in (getattr(e, "headers", None), getattr(getattr(e, "response", None), "headers", None)):
            items = getattr(headers, "items", None)
            if callable(items):
                value = next((v for k, v in items() if str(k).lower() == "retry-after"), None)
                if value is not None:
                    break
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def http_status(e: BaseException) -> int | None:
    """The HTTP status of a failed request: `e.http_status` (or `e.status`), else, for a ccxt error,
    its "<id> <status> ..." message."""
    for attr in ("http_status", "status"):
        status = getattr(e, attr, None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    if "BaseError" in {c.__name__ for c in type(e).__mro__}:
        m = _HTTP_STATUS.match(str(e))
        return int(m.group(1)) if m else None
    return None


def is_ban(e: BaseException) -> bool:
    """HTTP 418 (Binance's IP ban), or a ccxt DDoSProtection saying the IP is banned."""
    if http_status(e) == 418:
        return True
    return "DDoSProtection" in {c.__name__ for c in type(e).__mro__} and "banned" in str(e).lower()


# --- the cache --------------------------------------------------------------------------------------------


class _Series:
    """Cached candles of one (symbol, interval) covering [lo, hi) in time.

    The columns live in buffers with room to grow: a forward fill is written after the candles
    already there (no concatenation of the whole series, no second copy of it). `c` views the
    filled part; a price (the VWAP of a few candles) is read straight from the buffers.
    """

    __slots__ = ("c", "lo", "hi", "step", "_t0", "_n", "_contiguous", "_buf", "_at", "bad", "_bad_ts", "end",
                 "later", "chunk", "_until", "clean_from", "clean_to")

    def __init__(self, step: int) -> None:
        self.c = Candles.empty()
        self.lo = self.hi = 0
        self.step = step
        self._t0 = 0
        self._n = 0
        self._contiguous = True
        self._buf: list[np.ndarray] = []  # the six columns, each with room past _n
        self._at: tuple[memoryview, ...] = ()  # high, low, close, volume of _buf as Python floats, one index away
        self.bad: dict[int, str] = {}  # open time -> why the exchange's candle is invalid
        self._bad_ts: np.ndarray | None = None
        self.end: int | None = None  # the venue has no candle from here up to hi (found explicitly)
        self.later: int | None = None  # open time of a candle known to exist after an empty stretch
        self.chunk = CHUNK  # candles of the next forward fill
        self._until = 0  # open time up to which runs expect to read (room is made for it at once)
        # Open times [clean_from, clean_to) hold a candle at every step and none invalid: a window
        # inside them is served straight from the columns (empty while there are gaps or bad candles).
        self.clean_from, self.clean_to = _NOWHERE, -_NOWHERE

    def __getstate__(self) -> dict[str, Any]:  # shipped to other processes (executors): no memoryviews
        return {k: getattr(self, k) for k in self.__slots__ if k != "_at"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._at = self._views()

    def _views(self) -> tuple[memoryview, ...]:
        return tuple(self._buf[_COLS.index(f)].data for f in ("high", "low", "close", "volume")) if self._buf else ()

    def expect(self, until: int) -> None:
        """A run will read candles up to open time `until`: the next buffers have room for them,
        so the forward fills up to there copy no candle twice."""
        self._until = max(self._until, until)

    def invalid_in(self, start: int, end: int) -> str | None:
        """Why a window [start, end) cannot be used (it holds an invalid candle), or None."""
        if self._bad_ts is not None:
            i = int(np.searchsorted(self._bad_ts, start))
            if i < len(self._bad_ts) and self._bad_ts[i] < end:
                return self.bad[int(self._bad_ts[i])]
        return None

    def index(self, t: int) -> int:
        """Position of the first candle with open time >= t (arithmetic when gap-free)."""
        if self._contiguous:
            k = -(-(t - self._t0) // self.step)
            return 0 if k < 0 else (k if k < self._n else self._n)
        return int(np.searchsorted(self.c.timestamp, t))

    def add(self, c: Candles, lo: int, hi: int, bad: dict[int, str] | None = None) -> None:
        """Record that [lo, hi) holds exactly `c` (one copy per fill, whatever its pages)."""
        if hi <= lo:
            return
        for t, why in (bad or {}).items():
            if not self.lo <= t < self.hi or self.lo == self.hi:
                self.bad[t] = why
        if self.bad:
            self._bad_ts = np.array(sorted(self.bad), dtype=np.int64)
        if self.lo == self.hi:
            self._n = 0
            self._put([], c)
            self.lo, self.hi = lo, hi
        else:
            before = c[: int(np.searchsorted(c.timestamp, self.lo))] if lo < self.lo else Candles.empty()
            after = c[int(np.searchsorted(c.timestamp, self.hi)):] if hi > self.hi else Candles.empty()
            self.lo, self.hi = min(lo, self.lo), max(hi, self.hi)
            if len(before):  # rare and small (a window reaching back before the first fill): rebuild
                self._put([before, self.c], after)
            elif len(after):
                self._put([], after)
        if self._contiguous and not self.bad and self._n:
            self.clean_from, self.clean_to = self._t0, self._t0 + self._n * self.step
        else:
            self.clean_from, self.clean_to = _NOWHERE, -_NOWHERE

    def _put(self, head: list[Candles], tail: Candles) -> None:
        """Make the series head + (the candles there now, unless head is given) + tail, writing
        tail into the spare room when it fits (the usual forward fill)."""
        n, m = self._n, len(tail)
        keep = head if head else ([self.c] if n else [])
        start = sum(len(p) for p in keep)
        if head or not self._buf or start + m > len(self._buf[0]):
            # New buffers with room for the next fill; pages nobody writes cost no memory. The old
            # ones stay as they are for whoever still views them.
            first = int(keep[0].timestamp[0]) if keep else (int(tail.timestamp[0]) if m else self._until)
            room = max(start + m + self.chunk, (self._until - first) // self.step + 1)
            old = [Candles.concat(keep)] if keep else []
            self._buf = [np.empty(room, dtype=np.int64 if f == "timestamp" else np.float64) for f in _COLS]
            for col, f in zip(self._buf, _COLS):
                if old:
                    col[:start] = getattr(old[0], f)
            self._at = self._views()
        for col, f in zip(self._buf, _COLS):
            col[start:start + m] = getattr(tail, f)
        self._n = start + m
        self.c = Candles(*(col[:self._n] for col in self._buf))
        ts = self.c.timestamp
        self._t0 = int(ts[0]) if self._n else 0
        self._contiguous = self._n == 0 or int(ts[-1]) - self._t0 == (self._n - 1) * self.step

    def vwap_array(self, n: int) -> np.ndarray:
        """Rolling VWAP of n candles at each cached candle (NaN before the n-th)."""
        return rolling_vwap(self.c, n)

    def vwap_before(self, k: int, n: int) -> float:
        """vwap() of the n cached candles before position k (n <= k <= len), the same sums in the same order."""
        h, lo, cl, vol = self._at
        num = volume = 0.0
        for i in range(k - n, k):
            v = vol[i]
            num += (h[i] + lo[i] + cl[i]) / 3 * v
            volume += v
        if volume == 0:
            closes = 0.0
            for i in range(k - n, k):
                closes += cl[i]
            return closes / n
        return num / volume

    def price(self, aligned: int, n: int) -> float | None:
        """The VWAP of the n candles before `aligned` when all n are cached, gap-free and valid;
        None when average_price must look closer."""
        if not self.clean_from + n * self.step <= aligned <= self.clean_to:
            return None
        return self.vwap_before(-(-(aligned - self._t0) // self.step), n)


_COLS = Candles.__slots__
_NOWHERE = 2**62  # clean_from of a series with no clean span (and -_NOWHERE its clean_to)


class _Book:
    """What backtests on one exchange have fetched in this process (thread): shared by their runs."""

    __slots__ = ("schema", "series", "page")

    def __init__(self, schema: ExchangeSchema) -> None:
        self.schema = schema
        self.series: dict[tuple[str, str], _Series] = {}
        self.page = 0  # the longest page the venue has answered: an empty page covers at most that


class _Books:
    """Books per thread and exchange name (one event loop mutates a book; threads never share one)."""

    def __init__(self) -> None:
        self._by_thread: dict[int, dict[str, _Book]] = {}

    def get(self, schema: ExchangeSchema) -> _Book:
        alive = {t.ident for t in threading.enumerate()}
        for ident in [i for i in list(self._by_thread) if i not in alive]:
            self._by_thread.pop(ident, None)  # a finished background thread's candles
        books = self._by_thread.setdefault(threading.get_ident(), {})
        book = books.get(schema.exchange_name)
        if book is None or book.schema is not schema:
            book = books[schema.exchange_name] = _Book(schema)
        return book

    def clear(self) -> None:
        self._by_thread.clear()

    def __len__(self) -> int:
        return sum(len(b.series) for books in self._by_thread.values() for b in books.values())


_books = _state.register("candle_caches", _Books())


def cached_series(schema: ExchangeSchema) -> dict[tuple[str, str], Any]:
    """What this thread's backtests have fetched from the exchange, to ship to another process."""
    return dict(_books.get(schema).series)


def adopt_series(schema: ExchangeSchema, series: dict[tuple[str, str], Any]) -> None:
    """Take candles fetched elsewhere (cached_series) as this thread's cache of the exchange."""
    _books.get(schema).series.update(series)


# --- the client -------------------------------------------------------------------------------------------


class ExchangeClient:
    """One exchange as seen by one run. `backtest=True` reads through the exchange's shared cache
    (and its CandleStore, if any) and remembers the first fetch failure in `failure`."""

    def __init__(self, schema: ExchangeSchema, *, backtest: bool,
                 sleep: Callable[[float], Awaitable[object]] | None = None,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 jitter: Callable[[], float] = random.random) -> None:
        self.schema = schema
        self.name = schema.exchange_name
        self.backtest = backtest
        self._sleep = sleep if sleep is not None else default_sleep
        self._now_ms = now_ms
        self._jitter = jitter
        self._book = _books.get(schema) if backtest else _Book(schema)
        self._series = self._book.series
        self._on_candle_data = callback(schema.callbacks, "on_candle_data")
        self.failure: CandleError | None = None  # backtest: the first fetch that failed (fails the run)
        self.failures = 0  # fetches that failed after their retries (live counts outages with it)
        self.last_failure: CandleError | None = None

    def _failed(self, error: CandleError) -> CandleError:
        self.failures += 1
        self.last_failure = error
        if self.backtest and self.failure is None:
            self.failure = error
        return error

    def _horizon(self, step: int) -> int:
        """Open times below this are closed candles by the wall clock (the run's clock in live)."""
        return self._now_ms() // step * step

    # --- raw fetch ---------------------------------------------------------------------

    async def fetch(self, symbol: str, interval: str, since: int, limit: int) -> Candles:
        """Ask the exchange once per attempt; validate; retry; raise CandleError naming the call."""
        return (await self._fetch(symbol, interval, since, limit, lenient=False))[0]

    async def fetch_lenient(self, symbol: str, interval: str, since: int,
                            limit: int) -> tuple[Candles, dict[int, str]]:
        """fetch for cache fills: when invalid candles come back the same way twice, keep them and
        return (candles, {time: reason}), so only windows that contain one fail, as if each
        window had been fetched on its own."""
        return await self._fetch(symbol, interval, since, limit, lenient=True)

    async def _attempt(self, symbol: str, interval: str, since: int, limit: int,
                       lenient: bool) -> tuple[Candles, dict[int, str]]:
        raw = await maybe_await(self.schema.get_candles(symbol, interval, to_datetime(since), limit))
        batch = to_candles(raw)
        self._book.page = max(self._book.page, min(len(batch), limit))
        median_min = cfg.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN
        factor = cfg.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR
        bad: dict[int, str]
        if lenient:
            c, bad = check_batch_lenient(batch, median_min=median_min, anomaly_factor=factor)
        else:
            c, bad = check_batch(batch, median_min=median_min, anomaly_factor=factor), {}
        if len(c) and c.timestamp[0] < since:
            c = c[int(np.searchsorted(c.timestamp, since)):]
            bad = {t: why for t, why in bad.items() if t >= since}
        if self._on_candle_data is not None:
            await maybe_await(self._on_candle_data(symbol, interval, to_datetime(since), limit, c))
        return c, bad

    async def _fetch(self, symbol: str, interval: str, since: int, limit: int,
                     lenient: bool) -> tuple[Candles, dict[int, str]]:
        """fetch / fetch_lenient; without `lenient` the reasons are always empty.

        Errors that cannot succeed fail at once; the network family backs off exponentially with
        jitter from CC_GET_CANDLES_RETRY_DELAY_MS (at least the venue's Retry-After); anything else,
        invalid candles included, is asked again until it fails twice the same way.
        """
        attempts = cfg.CC_GET_CANDLES_RETRY_COUNT
        last: BaseException | None = None
        seen: object = None
        note = ""
        permanent = False
        attempt = 0
        for attempt in range(1, attempts + 1):
            try:
                c, bad = await self._attempt(symbol, interval, since, limit, lenient)
            except Exception as e:  # noqa: BLE001 - every exchange failure is classified below
                last = e
                kind = error_kind(e)
                if kind == "permanent":
                    note, permanent = f" (not retried: {type(e).__name__} cannot succeed)", True
                    break
                same: object = (type(e), str(e))
                if kind == "other" and same == seen:
                    note, permanent = " (the same failure twice: asking again cannot help)", True
                    break
                seen = same
            else:
                same = ("invalid", tuple(sorted(bad.items())))
                if not bad or attempt == attempts or same == seen:  # the same invalid candles twice
                    return c, {t: self._invalid(symbol, interval, t, why) for t, why in bad.items()}
                seen, last = same, ValueError(next(iter(bad.values())))
            if attempt == attempts:
                break
            delay, refusal = self._delay(attempt, last)
            if refusal:
                note, permanent = refusal, is_ban(last)
                break
            await self._sleep(delay)
        step = interval_ms(interval)
        raise self._failed(CandleFetchError(
            f"exchange {self.name!r}: get_candles(symbol={symbol!r}, interval={interval!r}, "
            f"since={iso(since)}, limit={limit}) for the window {iso(since)} .. {iso(since + limit * step)} "
            f"failed after {attempt} attempt(s){note}: {type(last).__name__}: {last}",
            exchange=self.name, symbol=symbol, interval=interval, since=since, limit=limit,
            attempts=attempt, permanent=permanent, last=last)) from last

    def _delay(self, attempt: int, e: BaseException | None) -> tuple[float, str]:
        """(seconds to wait before the next attempt, or why not to wait at all)."""
        base = cfg.CC_GET_CANDLES_RETRY_DELAY_MS / 1000
        backoff = min(base * 2 ** (attempt - 1), max(base, MAX_BACKOFF_S)) * (0.5 + 0.5 * self._jitter())
        told = retry_after(e) if e is not None else None
        if e is not None and is_ban(e):
            if told is None or told > MAX_WAIT_S:
                wait = "no Retry-After" if told is None else f"Retry-After {told:g} s"
                return 0.0, (f" (the exchange has banned this IP (HTTP 418), {wait}; backtest-kit waits at "
                             f"most {MAX_WAIT_S:g} s: wait for the ban to end)")
            return max(backoff, told), ""
        if told is not None:
            if told > MAX_WAIT_S:
                return 0.0, f" (the exchange asked to wait {told:g} s (Retry-After), more than {MAX_WAIT_S:g} s)"
            return max(backoff, told), ""
        return backoff, ""

    def _invalid(self, symbol: str, interval: str, t: int, why: str) -> str:
        return (f"exchange {self.name!r}: candle of symbol={symbol!r}, interval={interval!r} "
                f"at {iso(t)} is invalid: {_BATCH_INDEX.sub('', why)}")

    def _check(self, s: _Series, start: int, end: int) -> None:
        """Refuse a window [start, end) that holds an invalid candle (it fails the backtest)."""
        why = s.invalid_in(start, end)
        if why is not None:
            raise self._failed(CandleFetchError(why, exchange=self.name, permanent=True))

    # --- paging ------------------------------------------------------------------------

    async def _pages(self, s: _Series, symbol: str, interval: str, start: int, want: int,
                     stop: int) -> AsyncIterator[tuple[Candles, dict[int, str], int]]:
        """Page forward over [start, stop): yields (candles, bad, hi) where [start, hi) is covered so far.

        Candles are needed up to `want`: past it an empty page just ends the paging (nothing is
        assumed about what follows). Before it, an empty page is asked again; if still empty it
        covers only a stride the venue could have answered (its longest page so far), after a
        forward probe: when none finds a candle up to the wall clock, the data has ended (`s.end`).
        """
        step = s.step
        at = start
        while at < stop:
            limit = -(-(stop - at) // step)
            c, bad = await self.fetch_lenient(symbol, interval, at, limit)
            if not len(c) and not self.backtest and stop - at <= step:
                return  # live: the newest candle is not published yet; the next tick asks again
            if not len(c) and at < want:
                c, bad = await self.fetch_lenient(symbol, interval, at, limit)  # never trust one empty page
            if len(c):
                if int(c.timestamp[0]) >= stop:  # the venue's next candle is past the range: all empty
                    yield Candles.empty(), {}, stop
                    return
                c = c[: int(np.searchsorted(c.timestamp, stop))]
                at = int(c.timestamp[-1]) + step
                yield c, {t: why for t, why in bad.items() if t < stop}, at
                continue
            if at >= want:
                return
            stride = min(limit, self._book.page or DEFAULT_STRIDE)
            if s.later is None or s.later <= at:
                s.later = await self._probe(symbol, interval, at, stride, step)
                if s.later is None:  # nothing up to the wall clock: the end of the data, found
                    s.end = at
                    yield Candles.empty(), {}, stop
                    return
            at = min(at + stride * step, s.later, stop)
            yield Candles.empty(), {}, at

    async def _probe(self, symbol: str, interval: str, at: int, stride: int, step: int) -> int | None:
        """Open time of a candle after an empty page at `at` (pages at at + stride * 1, 2, 4, ... up to
        the wall clock), or None when every probe is empty."""
        horizon = self._horizon(step)
        k = 1
        while at + k * stride * step < horizon:
            c, _ = await self.fetch_lenient(symbol, interval, at + k * stride * step, stride)
            if len(c):
                return int(c.timestamp[0])
            k *= 2
        return None

    async def _gather(self, s: _Series, symbol: str, interval: str, start: int, want: int,
                      stop: int) -> tuple[Candles, dict[int, str], int]:
        """Candles of [start, hi) with hi <= stop as far as known (>= want unless the data ended):
        from the store where it has them, the rest from the venue (written back to the store)."""
        store = self.schema.store
        if store is None:
            parts: list[Candles] = []
            bad: dict[int, str] = {}
            hi = start
            async for c, more, reached in self._pages(s, symbol, interval, start, want, stop):
                if len(c):
                    parts.append(c)
                bad.update(more)
                hi = reached
            return Candles.concat(parts), bad, hi
        return await self._gather_stored(s, store, symbol, interval, start, want, stop)

    async def _gather_stored(self, s: _Series, store: Any, symbol: str, interval: str, start: int, want: int,
                             stop: int) -> tuple[Candles, dict[int, str], int]:
        key = self.store_symbol(symbol)
        now = self._now_ms()
        writable = not getattr(store, "read_only", False)
        fetched: list[Candles] = []
        fetched_bad: dict[int, str] = {}
        hi = stop
        for a, b in store.missing(self.name, key, interval, start, stop):
            if a >= want:  # what is needed is stored; the rest is not asked for
                hi = a
                break
            pending: list[Candles] = []
            flushed = reached = a
            async for c, more, hi_now in self._pages(s, symbol, interval, a, want, b):
                reached = hi_now
                if len(c):
                    pending.append(c)
                    fetched_bad.update(more)
                if writable and sum(len(p) for p in pending) >= FLUSH_CANDLES:
                    self._write(store, key, interval, pending, flushed, reached, now, None)
                    fetched.extend(pending)
                    pending, flushed = [], reached
            if writable:
                self._write(store, key, interval, pending, flushed, reached, now,
                            s.end if s.end is not None and a <= s.end <= b else None)
            fetched.extend(pending)
            if reached < b:
                hi = reached
                break
        if writable:
            c, bad = self._read_store(store, key, symbol, interval, start, hi)
        else:  # read-only: what the store has plus what was fetched now
            stored, bad = self._read_store(store, key, symbol, interval, start, hi)
            both = Candles.concat([stored, *fetched])
            c = Candles(*(getattr(both, f)[np.argsort(both.timestamp, kind="stable")] for f in Candles.__slots__)) \
                if fetched else stored
            bad.update(fetched_bad)
        end = store.data_end(self.name, key, interval)
        if s.end is None and end is not None and start <= end <= hi:
            s.end = end
        return c, bad, hi

    def _write(self, store: Any, key: str, interval: str, parts: list[Candles], lo: int, hi: int, now: int,
               data_end: int | None) -> None:
        c = Candles.concat(parts)
        if hi <= lo and not len(c) and data_end is None:
            return
        store.write(self.name, key, interval, {f: getattr(c, f) for f in _COLS},
                    covered=(lo, hi), now_ms=now, data_end=data_end)

    def _read_store(self, store: Any, key: str, symbol: str, interval: str, start: int,
                    end: int) -> tuple[Candles, dict[int, str]]:
        cols = store.read(self.name, key, interval, start, end)
        c, bad = check_batch_lenient(Candles(*(cols[f] for f in Candles.__slots__)),
                                     median_min=cfg.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN,
                                     anomaly_factor=cfg.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR)
        return c, {t: self._invalid(symbol, interval, t, why) for t, why in bad.items()}

    async def download(self, symbol: str, interval: str, start: int, end: int,
                       progress: Callable[[int, int], None] | None = None) -> int:
        """Fetch every candle of [start, end) the exchange's store lacks and write it there (resumable:
        what is stored, or recorded as having no data, is not asked again). `progress(steps, candles)`
        after each page: interval steps covered so far and candles fetched. Returns the candles fetched."""
        store = self.schema.store
        if store is None:
            raise ValidationError(f"exchange {self.name!r} has no store to download into")
        step = interval_ms(interval)
        end = min(end, self._horizon(step))
        key = self.store_symbol(symbol)
        now = self._now_ms()
        s = _Series(step)
        fetched = done = 0
        for a, b in store.missing(self.name, key, interval, start, end):
            pending: list[Candles] = []
            flushed = reached = a
            try:
                async for c, _bad, hi in self._pages(s, symbol, interval, a, b, b):
                    reached = hi
                    if len(c):
                        pending.append(c)
                        fetched += len(c)
                    if sum(len(p) for p in pending) >= DOWNLOAD_FLUSH_CANDLES:
                        self._write(store, key, interval, pending, flushed, reached, now, None)
                        pending, flushed = [], reached
                    if progress is not None:
                        progress(done + (reached - a) // step, fetched)
            finally:  # also when a fetch failed: what came back is kept, a rerun resumes after it
                self._write(store, key, interval, pending, flushed, reached, now,
                            s.end if s.end is not None and a <= s.end <= b else None)
            done += (b - a) // step
        return fetched

    def store_symbol(self, symbol: str) -> str:
        """The name a symbol is stored under: the venue's one name of the market when it is known."""
        fn = self.schema.resolve_symbol
        name = fn(symbol) if fn is not None else symbol
        return name if isinstance(name, str) and name else symbol

    # --- time windows ------------------------------------------------------------------

    async def range(self, symbol: str, interval: str, start: int, end: int) -> Candles:
        """Candles with start <= open time < end (cached in backtests; paged in every mode)."""
        step = interval_ms(interval)
        if end <= start:
            return Candles.empty()
        if not self.backtest:
            return await self._live_range(symbol, interval, start, end, step)
        s = await self._covered(symbol, interval, start, end)
        self._check(s, start, end)
        return s.c.view(s.index(start), s.index(end))

    async def _live_range(self, symbol: str, interval: str, start: int, end: int, step: int) -> Candles:
        """Every closed candle of [start, end), page after page, so a window larger than the venue's
        page cap still ends with the newest closed candles."""
        end = min(end, self._horizon(step))
        s = _Series(step)
        parts: list[Candles] = []
        bad: dict[int, str] = {}
        async for c, more, _ in self._pages(s, symbol, interval, start, end, end):
            if len(c):
                parts.append(c)
            bad.update(more)
        if bad:
            raise self._failed(CandleFetchError(bad[min(bad)], exchange=self.name, symbol=symbol,
                                                interval=interval, permanent=True))
        c = Candles.concat(parts)
        # Pages may hold the exchange's own arrays: strategy code gets a copy of its own.
        return Candles(*(np.array(getattr(c, f)) for f in _COLS)) if len(parts) == 1 else c

    async def _covered(self, symbol: str, interval: str, start: int, end: int) -> _Series:
        s = self._series.get((symbol, interval))
        if s is not None and s.lo <= start and end <= s.hi:
            return s
        step = interval_ms(interval)
        if s is None:
            s = self._series[(symbol, interval)] = _Series(step)
        # Never cache candles that have not closed yet (wall clock): nothing past it is asked for,
        # so a frame past the wall clock costs no request per tick.
        end = min(end, self._horizon(step))
        start = min(start, end)
        if start >= end or (s.lo != s.hi and s.lo <= start and end <= s.hi):
            return s
        if s.lo == s.hi:
            await self._fill(s, symbol, interval, start, end, step)
        if start < s.lo:
            c, bad, hi = await self._gather(s, symbol, interval, start, s.lo, s.lo)
            s.add(c, start, hi, bad)
        while end > s.hi:
            before = s.hi
            await self._fill(s, symbol, interval, s.hi, end, step)
            if s.hi <= before:
                break
        return s

    async def _fill(self, s: _Series, symbol: str, interval: str, start: int, end: int, step: int) -> None:
        """Fetch from `start` a whole chunk (at least up to `end`) and record what it covers."""
        horizon = self._horizon(step)
        limit = max(-(-(end - start) // step), min(s.chunk, max(1, (horizon - start) // step)))
        s.chunk = min(s.chunk * 2, 1_000_000)  # few fills, so few rolling-VWAP rebuilds
        c, bad, hi = await self._gather(s, symbol, interval, start, end, min(start + limit * step, horizon))
        s.add(c, start, hi, bad)

    async def window(self, symbol: str, interval: str, when: int, limit: int) -> Candles:
        """The `limit` closed candles before `when` (D1): [aligned - limit*step, aligned)."""
        step = interval_ms(interval)
        aligned = when // step * step
        start = aligned - limit * step
        s = self._series.get((symbol, interval)) if self.backtest else None
        if s is not None and s.lo <= start and aligned <= s.hi:  # the common, cached case
            if s.bad:
                self._check(s, start, aligned)
            return s.c.view(s.index(start), s.index(aligned))
        return await self.range(symbol, interval, start, aligned)

    def series(self, symbol: str, interval: str) -> _Series:
        """The cached series of (symbol, interval), empty until a window asks for candles (backtests:
        `price` answers average_price at once for a window the cache holds whole)."""
        s = self._series.get((symbol, interval))
        if s is None:
            s = self._series[(symbol, interval)] = _Series(interval_ms(interval))
        return s

    async def average_price(self, symbol: str, when: int) -> float:
        """VWAP of the last CC_AVG_PRICE_CANDLES_COUNT closed 1m candles at `when`."""
        n = cfg.CC_AVG_PRICE_CANDLES_COUNT
        aligned = when // MINUTE_MS * MINUTE_MS
        start = aligned - n * MINUTE_MS
        if self.backtest:
            s = self._series.get((symbol, "1m"))
            if s is None or not (s.lo <= start and aligned <= s.hi):
                s = await self._covered(symbol, "1m", start, aligned)
            if s.bad:
                self._check(s, start, aligned)
            lo, hi = s.index(start), s.index(aligned)
            if hi - lo == n:
                return s.vwap_before(hi, n)
            c = s.c[lo:hi]
            if not len(c) and (start >= self._horizon(MINUTE_MS)
                               or (s.end is not None and s.end <= start and aligned <= s.hi)):
                raise EndOfData(f"exchange {self.name!r}: {symbol} has no 1m candles from "
                                f"{iso(min(start, s.end if s.end is not None else start))} on")
        else:
            c = await self.range(symbol, "1m", start, aligned)
        if not len(c):
            raise CandleError(f"exchange {self.name!r}: no closed 1m candles for {symbol} "
                              f"before {iso(when)} to price it (window {iso(start)} .. {iso(aligned)})")
        return vwap(c)

    async def minute_series(self, symbol: str, start: int, count: int) -> tuple[Candles, WindowVwap]:
        """The first `count` 1m candles from `start` that open by start + count minutes, as the
        exchange would answer get_candles(since=start, limit=count) (a gap never stretches the
        window further), plus their rolling VWAP (for the backtest fast path: computed where read)."""
        n = cfg.CC_AVG_PRICE_CANDLES_COUNT
        end = start + count * MINUTE_MS
        s = await self._covered(symbol, "1m", start, end + 1)
        lo = s.index(start)
        hi = min(lo + count, s.index(end + 1))
        if hi > lo:
            self._check(s, start, int(s.c.timestamp[hi - 1]) + 1)
        c = s.c[lo:hi]
        return c, WindowVwap(c, n)

    def frame_gaps(self, symbol: str, start: int, end: int) -> tuple[int, int]:
        """(gaps, longest gap in minutes) between the cached 1m candles opening in [start, end]:
        runs of missing minutes inside the data the frame met (none before its first candle or
        after its last)."""
        s = self._series.get((symbol, "1m"))
        if s is None or not len(s.c) or s.clean_from < s.clean_to:  # (no gap anywhere in the cache)
            return 0, 0
        ts = s.c.timestamp[s.index(start): s.index(end + 1)]
        missing = np.diff(ts) // MINUTE_MS - 1
        missing = missing[missing > 0]
        return int(len(missing)), int(missing.max()) if len(missing) else 0

    async def format_price(self, symbol: str, price: float) -> str:
        fn = self.schema.format_price
        return str(price) if fn is None else str(await maybe_await(fn(symbol, price)))

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        fn = self.schema.format_quantity
        return str(quantity) if fn is None else str(await maybe_await(fn(symbol, quantity)))
