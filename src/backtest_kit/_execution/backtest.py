"""Backtest: walk a frame's timeframes, tick the strategy, and let the fast path run each
signal to its end on 1m candles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas loads on first use: `import backtest_kit` stays light
    import pandas as pd

from .. import _logging
from .. import _registry as registry
from .._candles import Candles
from .._config import cfg
from .._engine import risk
from .._engine.account import Account
from .._engine.machine import Machine
from .._engine.runs import Run, runs
from .._engine.sink import Sink
from .._engine.stats import BacktestStatistics, backtest_statistics, equity_block, equity_series, trades_frame
from .._engine.vector import NEVER
from .._equity import resample_last
from .._exchange import EndOfData, ExchangeClient, maybe_await
from .._hub import hub
from .._report.backtest import render_backtest_report
from .._report.html import backtest_page
from .._report.table import Column
from .._schema import StrategySchema, callback, check_frame_count
from .._time import MINUTE_MS, interval_ms, iso, to_datetime
from ..errors import ValidationError
from ..events import DoneEvent, Outcome, PerformanceEvent, ProgressEvent, TickResult
from .base import BackgroundRun, Facade, Instance, check_format, check_freq


class Timer:
    """Timing samples of one run, handed to the sink (run log, listen_performance)."""

    def __init__(self, sink: Sink, exchange_name: str):
        self.sink = sink
        self.meta = (sink.strategy_name, exchange_name, sink.symbol, sink.backtest)
        self.previous: float | None = None

    async def sample(self, metric: str, started: float) -> None:
        if metric == "backtest_timeframe" and not hub.has("performance"):
            return  # per-frame samples only for listeners: a year has half a million frames
        now = time.time() * 1000
        event = PerformanceEvent(now, self.previous, metric, (time.perf_counter() - started) * 1000, *self.meta)
        self.previous = now
        await self.sink.performance(event)


class FrameLoop:
    """One (symbol, strategy) walking a frame's timeframes; `step()` handles one frame.

    `next_time` is the frame the next step handles (None when done), so several loops can be
    merged in one time order (a portfolio) or driven alone (`run_frames`).
    """

    def __init__(self, machine: Machine, frames: Sequence[int], exchange_name: str, timer: Timer):
        self.machine = machine
        self.sink = machine.sink
        self.n = len(frames)  # frames are evenly spaced: kept as first + i * step, not as the array
        self.exchange_name = exchange_name
        self.timer = timer
        self.i = 0
        self.done = self.n == 0
        self.progress_on = hub.has("backtest_progress")
        self._last_pct = -1
        self._version = -1  # the hub version _quiet and _timed were read at
        self._quiet = self._timed = False
        self._first = int(frames[0]) if self.n else 0
        self._fstep = int(frames[1] - frames[0]) if self.n > 1 else 1
        if self.n:  # the 1m cache makes room once for the whole frame and the longest signal after it
            after = max(cfg.CC_MAX_SIGNAL_LIFETIME_MINUTES, cfg.CC_SCHEDULE_AWAIT_MINUTES) + 1
            machine.exchange.series(machine.symbol, "1m").expect(self._last + after * MINUTE_MS)

    @property
    def _last(self) -> int:
        return self._first + (self.n - 1) * self._fstep

    @property
    def next_time(self) -> int | None:
        return None if self.done else self._first + self.i * self._fstep

    def _at_or_after(self, t: int) -> int:
        """Index of the first frame >= t (frames are evenly spaced)."""
        k = -(-(t - self._first) // self._fstep)
        return max(k, 0)

    def _go(self, i: int) -> None:
        self.i = i
        if i >= self.n:
            self.done = True

    def _next_bucket(self, when: int) -> None:
        """On to the first frame at or after the machine's next ask: the next get_signal bucket, or
        the next bar a vectorised strategy's arrays hold a signal for (the index only grows)."""
        # (_go(_at_or_after(...)) written out: this runs once per idle bucket)
        k = -(-(self.machine.next_ask(when) - self._first) // self._fstep)
        self.i = k if k > 0 else 0
        if self.i >= self.n:
            self.done = True

    def _goes_on(self, until: int | None) -> bool:
        """The step may handle the next frame too: it comes before `until`."""
        return until is not None and not self.done and self._first + self.i * self._fstep < until

    def _listeners(self) -> None:
        """Read again who listens (they may come and go during a run)."""
        self._version = hub.version
        self._quiet = not self.sink.observes_ticks
        self._timed = hub.has("performance")

    async def step(self, until: int | None = None) -> Outcome | None:
        """Handle frame `i`: skip a throttled idle bucket, or tick; returns what closed or was cancelled.

        `until`: go on through the quiet idle frames (nothing open, nobody watching, nothing
        happened) before that time, within this call (a loop driven alone); a portfolio steps
        its loops one frame at a time, in time order."""
        state, n = self.machine, self.n
        while True:
            i = self.i
            when = self._first + i * self._fstep  # frames are evenly spaced
            if self.progress_on and i * 100 // n > self._last_pct:
                self._last_pct = i * 100 // n
                await hub.emit("backtest_progress", ProgressEvent(self.exchange_name, state.strategy_name,
                                                                 state.symbol, n, i, i / n))
            if self._version != hub.version:  # listeners may come and go
                self._listeners()
            if state.pending is None and state.scheduled is None:
                if state.stopped:
                    self.done = True
                    return None
                if self._quiet and not state.may_ask(when):
                    # Nothing open, nothing waiting, get_signal throttled: skip to the next bucket.
                    self._next_bucket(when)
                    if self._goes_on(until):
                        continue
                    return None
            timed = self._timed  # per-frame samples only for listeners: a year has half a million frames
            frame_started = time.perf_counter() if timed else 0.0
            exchange = state.exchange
            try:
                result = await state.tick(when)
            except EndOfData as end:
                _logging.log.info("Backtest %s %s ends at %s: %s", state.symbol, state.strategy_name, iso(when), end)
                self.done = True  # the venue's data ended (found explicitly) or the wall clock is reached
                return None
            except Exception as e:  # noqa: BLE001 - a failed frame is reported and skipped
                if exchange.failure is not None:  # a candle fetch failed after its retries: fail the run
                    raise exchange.failure from exchange.failure.__cause__
                await self.sink.error(e, f"Backtest {state.symbol} {state.strategy_name} at "
                                         f"{to_datetime(when).isoformat()}")
                self._go(i + 1)
                return None
            if exchange.failure is not None:  # also when strategy code caught it: no silent differences
                raise exchange.failure
            if result is state.quiet_idle and not (timed or state.stopped or state.data_ended):
                self._next_bucket(when)  # the usual frame: nothing happened, and nobody watches idle ticks
                if self._goes_on(until):
                    continue
                return None
            return await self._after(result, when, timed, frame_started)

    async def _after(self, result: TickResult, when: int, timed: bool, frame_started: float) -> Outcome | None:
        """The rest of a frame whose tick did something (or is watched): run an opened or placed
        signal to its end, yield what closed, move on."""
        state, exchange = self.machine, self.machine.exchange
        outcome: Outcome | None = None
        action = result.action
        if action == "opened" or (action == "scheduled" and not state.stopped):
            # (a limit order placed while a stop is pending is dropped by the next tick instead)
            signal_started = time.perf_counter()
            try:
                outcome = await state.run_to_end(when)
            except Exception as e:  # noqa: BLE001 - the signal stays; later ticks watch it
                if exchange.failure is not None:
                    raise exchange.failure from exchange.failure.__cause__
                await self.sink.error(e, f"Backtest {state.symbol} {state.strategy_name} fast path")
            await self.timer.sample("backtest_signal", signal_started)
        elif result.action == "closed" or result.action == "cancelled":
            outcome = result  # D20: tick-level closes are yielded too
        if timed:
            await self.timer.sample("backtest_timeframe", frame_started)
        if outcome is not None:
            # D3: resume at the first frame at or after close + 1 minute.
            self._go(self._at_or_after(outcome.close_timestamp + MINUTE_MS))
            return outcome
        if action == "idle":
            if state.stopped or state.data_ended:
                self.done = True
                return None
            if result is state.quiet_idle:  # nobody sees idle ticks: on to the next bucket
                self._next_bucket(when)
                return None
        self._go(self.i + 1)
        return None

    async def finish(self) -> None:
        if self.n:  # gaps met in the frame's 1m data, for the statistics and the report
            self.sink.run.gaps = self.machine.exchange.frame_gaps(self.machine.symbol, self._first, self._last)
        if self.progress_on:
            await hub.emit("backtest_progress", ProgressEvent(self.exchange_name, self.machine.strategy_name,
                                                             self.machine.symbol, self.n, self.n, 1.0))


async def open_loop(symbol: str, strategy_name: str, exchange: ExchangeClient, frame_name: str,
                    attach: Callable[[Machine], None], account: Account | None = None,
                    strict: bool = False, *, strategy: StrategySchema | None = None,
                    window: tuple[int, int] | None = None, run: Run | None = None) -> FrameLoop:
    """Build the run of (symbol, strategy) over a frame: run log entry, sink, machine, loop.

    A sweep's trial passes its own `strategy` schema, a `window` (first and last frame time, ms) inside
    the frame, and a `run` kept out of the run log."""
    if strategy is None:
        strategy = registry.get_strategy(strategy_name, "Backtest.run")
    frame = registry.get_frame(frame_name, "Backtest.run")
    start, end = window if window is not None else (frame.start_ms, frame.end_ms)
    books = [risk.book(name, True) for name in strategy.risk_names]
    for b in books:  # a new run starts flat for this strategy and symbol
        b.forget(strategy.strategy_name, symbol)
    if run is None:
        run = runs.start("backtest", symbol, strategy.strategy_name)
    sink = Sink(strategy, symbol, backtest=True, run=run, books=books, account=account, strict=strict)
    state = Machine(strategy, exchange, symbol, sink)
    attach(state)
    # The frame's times (timeframes() without its array: a year of 1m frames is 4 MB of int64).
    check_frame_count(start, end, frame.interval, "timeframes")
    frames = range(start, end + 1, interval_ms(frame.interval))
    on_timeframe = callback(frame.callbacks, "on_timeframe")
    if on_timeframe is not None and window is None:
        await maybe_await(on_timeframe([to_datetime(int(t)) for t in frames], frame.start_date,
                                       frame.end_date, frame.interval))
    run.initial_capital = sink.account.initial
    attach_marks(run, exchange, start, end)
    await state.prepare(start, end, interval_ms(frame.interval))  # get_signals, once
    return FrameLoop(state, frames, exchange.name, Timer(sink, exchange.name))


async def run_frames(symbol: str, strategy_name: str, exchange_name: str, frame_name: str,
                     attach: Callable[[Machine], None], strict: bool = False) -> AsyncIterator[Outcome]:
    """The backtest generator: yields every closed and cancelled result in time order.

    `attach(machine)` lets the caller's stop() reach the run's machine; `strict` raises the
    first error of user code or the exchange instead of reporting it.
    """
    exchange = ExchangeClient(registry.get_exchange(exchange_name, "Backtest.run"), backtest=True)
    loop = await open_loop(symbol, strategy_name, exchange, frame_name, attach, strict=strict)
    run_started = time.perf_counter()
    while not loop.done:
        outcome = await loop.step(until=NEVER)  # alone: the quiet frames in one call
        if outcome is not None:
            yield outcome
    await loop.finish()
    await loop.timer.sample("backtest_total", run_started)


def attach_marks(run: Run, exchange: ExchangeClient, start: int, end: int) -> None:
    """Let the run fetch its 1m closes, from the frame's start to its end or the last close
    after it, when its equity is first asked for (a run nobody asks about fetches nothing)."""

    async def source() -> Candles:
        last = max([end, *(r.close_timestamp for r in run.results)])
        # A view of the cache, no copy: its candles never change once written (fills append after
        # them, and a fill before them builds new columns), and the marks copy only what they read.
        return await exchange.range(run.symbol, "1m", start, last + MINUTE_MS)

    run.mark_source = source


async def marks_of(run: Run, where: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's 1m closes, or None (reported) when the candles cannot be had: the trades
    stand, only the equity figures are missing."""
    try:
        return await run.marks()
    except Exception as e:  # noqa: BLE001 - reported, never silent
        await hub.report(e, f"{where} {run.symbol} {run.strategy_name}: equity marks")
        return None


async def statistics_of(run: Run, where: str) -> BacktestStatistics:
    """The statistics of a run, with the equity block when its 1m closes can be had."""
    marks = await marks_of(run, where)
    closed = run.closed
    equity = equity_block(closed, *marks, run.initial_capital) if marks is not None else None
    return backtest_statistics(closed, equity, run.gaps, run.errors)


class BacktestUtils(Facade[Instance]):
    """`bk.Backtest`: run strategies over historical frames and report on them."""

    kind, done_topic, folder = "Backtest", "done_backtest", "backtest"

    def __init__(self) -> None:
        super().__init__(Instance)

    def _validate(self, symbol: str, strategy_name: str, exchange_name: str, frame_name: str, source: str) -> None:
        registry.validate_symbol(symbol, source)
        registry.validate_strategy_refs(strategy_name, source)
        registry.get_exchange(exchange_name, source)
        registry.get_frame(frame_name, source)

    def run(self, symbol: str, *, strategy_name: str, exchange_name: str,
            frame_name: str, strict: bool = False) -> AsyncIterator[Outcome]:
        """Backtest `strategy_name` on `symbol`; yields closed and cancelled results. Errors of
        the strategy or the exchange are reported and the run goes on; `strict=True` raises the
        first one instead."""
        self._validate(symbol, strategy_name, exchange_name, frame_name, "Backtest.run")
        symbol = registry.canonical_symbol(symbol, exchange_name)
        inst = self._registry.get(symbol, strategy_name)
        return self._guarded(inst, lambda: run_frames(symbol, strategy_name, exchange_name, frame_name, inst.attach,
                                                      strict))

    def background(self, symbol: str, *, strategy_name: str, exchange_name: str,
                   frame_name: str, strict: bool = False) -> BackgroundRun:
        """Run the backtest without yielding; returns cancel() at once (a graceful stop)."""
        self._validate(symbol, strategy_name, exchange_name, frame_name, "Backtest.background")
        symbol = registry.canonical_symbol(symbol, exchange_name)
        inst = self._registry.get(symbol, strategy_name)
        return self._background(
            inst, lambda: run_frames(symbol, strategy_name, exchange_name, frame_name, inst.attach, strict),
            DoneEvent(exchange_name, strategy_name, True, symbol))

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """No new signals; a waiting order is dropped; an open position runs to its end."""
        registry.validate_strategy_refs(strategy_name, "Backtest.stop")
        self._stop(symbol, strategy_name)

    def _run(self, symbol: str, strategy_name: str, method: str) -> Run | None:
        registry.validate_strategy_refs(strategy_name, f"Backtest.{method}")
        self._registry.get(symbol, strategy_name)  # get_data memoises the instance, as 1.5.27 does
        return runs.get("backtest", symbol, strategy_name)

    async def _stats(self, symbol: str, strategy_name: str, method: str) -> BacktestStatistics:
        run = self._run(symbol, strategy_name, method)
        return backtest_statistics([]) if run is None else await statistics_of(run, f"Backtest.{method}")

    async def get_trades(self, symbol: str, strategy_name: str) -> pd.DataFrame:
        """Every closed trade: times, prices, quantity, notional and PnL in percent and money."""
        run = self._run(symbol, strategy_name, "get_trades")
        return trades_frame(run.closed if run is not None else [])

    async def get_equity(self, symbol: str, strategy_name: str, freq: str = "1d") -> pd.Series:
        """The account's equity, open positions marked at candle closes, sampled at the last 1m
        close of each `freq` bucket ("1m", "1h", "1d"); indexed by UTC bucket start."""
        check_freq(freq, "Backtest.get_equity")
        run = self._run(symbol, strategy_name, "get_equity")
        marks = await marks_of(run, "Backtest.get_equity") if run is not None else None
        if run is None or marks is None or not len(marks[0]):
            import pandas as pd

            return pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"), name="equity")
        eq, _ = equity_series(run.closed, *marks, run.initial_capital)
        return resample_last(marks[0], eq, freq).rename("equity")  # type: ignore[arg-type]

    async def get_data(self, symbol: str, strategy_name: str) -> BacktestStatistics:
        return await self._stats(symbol, strategy_name, "get_data")

    async def get_report(self, symbol: str, strategy_name: str, columns: Sequence[Column] | None = None) -> str:
        stats = await self._stats(symbol, strategy_name, "get_report")
        return await render_backtest_report(symbol, strategy_name, stats, columns)

    async def dump(self, symbol: str, strategy_name: str, path: str | None = None,
                   columns: Sequence[Column] | None = None, format: str = "md") -> str:
        """Write the report; `path` is a directory (default ./dump/backtest) or a .md / .html file.
        `format="html"`: one self-contained page with the chart of candles, trades, equity and
        drawdown, the statistics and a sortable trade table (opens with no network)."""
        ext = check_format(format, "Backtest.dump")
        if ext == ".md":
            return await self._dump(await self.get_report(symbol, strategy_name, columns), path, strategy_name)
        stats = await self._stats(symbol, strategy_name, "dump")
        run = runs.get("backtest", symbol, strategy_name)
        if run is None:
            raise ValidationError(f"Backtest.dump: {strategy_name!r} has not run on {symbol}; run it first")
        page = await backtest_page(run, stats, f"Backtest {strategy_name} on {symbol}")
        return await self._dump(page, path, strategy_name, ext)


Backtest = BacktestUtils()
