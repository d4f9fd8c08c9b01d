"""Backtest: walk a frame's timeframes, tick the strategy, and let the fast path run each
signal to its end on 1m candles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence

from .. import _registry as registry
from .._engine import risk
from .._engine.machine import Machine
from .._engine.rules import resolve
from .._engine.runs import runs
from .._engine.sink import Sink
from .._engine.stats import BacktestStatistics, backtest_statistics
from .._exchange import ExchangeClient, maybe_await
from .._frames import timeframes
from .._hub import hub
from .._report.backtest import render_backtest_report
from .._report.table import Column
from .._schema import callback
from .._time import MINUTE_MS, to_datetime
from ..events import DoneEvent, Outcome, PerformanceEvent, ProgressEvent
from .base import BackgroundRun, Facade, Instance


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


async def run_frames(symbol: str, strategy_name: str, exchange_name: str, frame_name: str,
                     attach: Callable[[Machine], None], strict: bool = False) -> AsyncIterator[Outcome]:
    """The backtest generator: yields every closed and cancelled result in time order.

    `attach(machine)` lets the caller's stop() reach the run's machine; `strict` raises the
    first error of user code or the exchange instead of reporting it.
    """
    strategy = registry.get_strategy(strategy_name, "Backtest.run")
    frame = registry.get_frame(frame_name, "Backtest.run")
    exchange = ExchangeClient(registry.get_exchange(exchange_name, "Backtest.run"), backtest=True)
    books = [risk.book(name, True) for name in strategy.risk_names]
    for b in books:  # a new run starts flat for this strategy and symbol
        b.forget(strategy_name, symbol)
    sink = Sink(strategy, symbol, backtest=True, run=runs.start("backtest", symbol, strategy_name), books=books,
                strict=strict)
    state = Machine(strategy, exchange, symbol, sink)
    attach(state)
    frames = timeframes(frame.start_ms, frame.end_ms, frame.interval)
    on_timeframe = callback(frame.callbacks, "on_timeframe")
    if on_timeframe is not None:
        await maybe_await(on_timeframe([to_datetime(int(t)) for t in frames], frame.start_date,
                                       frame.end_date, frame.interval))
    n = len(frames)
    timer = Timer(sink, exchange_name)
    run_started = time.perf_counter()
    progress_on = hub.has("backtest_progress")
    last_pct = -1
    step = state.interval_ms
    first = int(frames[0]) if n else 0
    fstep = int(frames[1] - frames[0]) if n > 1 else 1

    def at_or_after(t: int) -> int:
        """Index of the first frame >= t (frames are evenly spaced)."""
        k = -(-(t - first) // fstep)
        return max(k, 0)

    i = 0
    while i < n:
        when = int(frames[i])
        if progress_on and i * 100 // n > last_pct:
            last_pct = i * 100 // n
            await hub.emit("backtest_progress", ProgressEvent(exchange_name, strategy_name, symbol, n, i, i / n))
        observed = sink.observes_ticks  # listeners may come and go during a run
        if state.pending is None and state.scheduled is None:
            if state.stopped:
                break
            if not observed and not state.may_ask(when):
                # Nothing open, nothing waiting, get_signal throttled: skip to the next bucket.
                i = at_or_after((when // step + 1) * step)
                continue
        frame_started = time.perf_counter()
        try:
            result = await state.tick(when)
        except Exception as e:  # noqa: BLE001 - a failed frame is reported and skipped
            await sink.error(e, f"Backtest {symbol} {strategy_name} at {to_datetime(when).isoformat()}")
            i += 1
            continue
        outcome: Outcome | None = None
        if result.action == "opened" or (result.action == "scheduled" and not state.stopped):
            # (a limit order placed while a stop is pending is dropped by the next tick instead)
            signal_started = time.perf_counter()
            try:
                outcome = await resolve(state, when)
            except Exception as e:  # noqa: BLE001 - the signal stays; later ticks watch it
                await sink.error(e, f"Backtest {symbol} {strategy_name} fast path")
            await timer.sample("backtest_signal", signal_started)
        elif result.action == "closed" or result.action == "cancelled":
            outcome = result  # D20: tick-level closes are yielded too
        await timer.sample("backtest_timeframe", frame_started)
        if outcome is not None:
            yield outcome
            # D3: resume at the first frame at or after close + 1 minute.
            i = at_or_after(outcome.close_timestamp + MINUTE_MS)
            continue
        if result.action == "idle":
            if state.stopped:
                break
            if not observed:
                i = at_or_after((when // step + 1) * step)
                continue
        i += 1
    if progress_on:
        await hub.emit("backtest_progress", ProgressEvent(exchange_name, strategy_name, symbol, n, n, 1.0))
    await timer.sample("backtest_total", run_started)


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
        inst = self._registry.get(symbol, strategy_name)
        return self._guarded(inst, lambda: run_frames(symbol, strategy_name, exchange_name, frame_name, inst.attach,
                                                      strict))

    def background(self, symbol: str, *, strategy_name: str, exchange_name: str,
                   frame_name: str, strict: bool = False) -> BackgroundRun:
        """Run the backtest without yielding; returns cancel() at once (a graceful stop)."""
        self._validate(symbol, strategy_name, exchange_name, frame_name, "Backtest.background")
        inst = self._registry.get(symbol, strategy_name)
        return self._background(
            inst, lambda: run_frames(symbol, strategy_name, exchange_name, frame_name, inst.attach, strict),
            DoneEvent(exchange_name, strategy_name, True, symbol))

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """No new signals; a waiting order is dropped; an open position runs to its end."""
        registry.validate_strategy_refs(strategy_name, "Backtest.stop")
        self._stop(symbol, strategy_name)

    def _stats(self, symbol: str, strategy_name: str, method: str) -> BacktestStatistics:
        registry.validate_strategy_refs(strategy_name, f"Backtest.{method}")
        self._registry.get(symbol, strategy_name)  # get_data memoises the instance, as 1.5.27 does
        run = runs.get("backtest", symbol, strategy_name)
        return backtest_statistics(run.closed, run.errors) if run is not None else backtest_statistics([])

    async def get_data(self, symbol: str, strategy_name: str) -> BacktestStatistics:
        return self._stats(symbol, strategy_name, "get_data")

    async def get_report(self, symbol: str, strategy_name: str, columns: Sequence[Column] | None = None) -> str:
        stats = self._stats(symbol, strategy_name, "get_report")
        return await render_backtest_report(symbol, strategy_name, stats, columns)

    async def dump(self, symbol: str, strategy_name: str, path: str | None = None,
                   columns: Sequence[Column] | None = None) -> str:
        """Write the report; `path` is a directory (default ./dump/backtest) or a .md file."""
        return await self._dump(await self.get_report(symbol, strategy_name, columns), path, strategy_name)


Backtest = BacktestUtils()
