"""Backtest: walk a frame's timeframes, tick the strategy, and let the fast path run each
signal to its end on 1m candles."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Optional


from .. import _registry as registry


from .._engine import risk
from .._time import MINUTE_MS, to_datetime
from .._hub import hub
from .._exchange import ExchangeClient, maybe_await
from .._frames import timeframes
from .._engine.machine import StrategyState
from .._report.backtest import render_backtest_report, write_report
from .._report.source import report_path
from .._engine.rules import resolve
from .._schema import callback
from .._signal import CancelledResult, ClosedResult
from .._engine.stats import BacktestStatistics, backtest_statistics
from .base import DoneEvent, Instance, InstanceStatus, Registry, run_in_background


@dataclass(slots=True)
class ProgressEvent:
    """Payload of listen_backtest_progress (coalesced to at most one per percent + the final)."""

    exchange_name: str
    strategy_name: str
    symbol: str
    total_frames: int
    processed_frames: int
    progress: float


@dataclass(slots=True)
class PerformanceEvent:
    """Payload of listen_performance: one timing sample."""

    timestamp: float
    previous_timestamp: Optional[float]
    metric_type: str
    duration: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool


class Timer:
    """Records timing samples on the instance; emits them when someone listens."""

    def __init__(self, inst: Instance, symbol: str, strategy: str, exchange: str, backtest: bool):
        self.inst = inst
        self.meta = (strategy, exchange, symbol, backtest)
        self.previous: Optional[float] = None

    async def sample(self, metric: str, started: float) -> None:
        if metric == "backtest_timeframe" and not hub.has("performance"):
            return  # per-frame samples only for listeners: a year has half a million frames
        now = time.time() * 1000
        event = PerformanceEvent(now, self.previous, metric, (time.perf_counter() - started) * 1000, *self.meta)
        self.previous = now
        self.inst.perf.append(event)
        if hub.has("performance"):
            await hub.emit("performance", event)


async def run_frames(inst: Instance, symbol: str, strategy_name: str, exchange_name: str,
                     frame_name: str) -> AsyncIterator[ClosedResult | CancelledResult]:
    """The backtest generator: yields every closed and cancelled result in time order."""
    strategy = registry.get_strategy(strategy_name, "Backtest.run")
    frame = registry.get_frame(frame_name, "Backtest.run")
    exchange = ExchangeClient(registry.get_exchange(exchange_name, "Backtest.run"), backtest=True)
    books = [risk.book(name, True) for name in strategy.risk_names]
    for b in books:  # a new run starts flat for this strategy and symbol
        b.forget(strategy_name, symbol)
    state = StrategyState(strategy, exchange, symbol, backtest=True, record=inst.record, risks=books)
    inst.state = state
    if inst._is_stopped:
        state.stopped = True
    frames = timeframes(frame.start_ms, frame.end_ms, frame.interval)
    on_timeframe = callback(frame.callbacks, "on_timeframe")
    if on_timeframe is not None:
        await maybe_await(on_timeframe([to_datetime(int(t)) for t in frames], frame.start_date,
                                       frame.end_date, frame.interval))
    n = len(frames)
    timer = Timer(inst, symbol, strategy_name, exchange_name, True)
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
        observed = state.observes_ticks  # listeners may come and go during a run
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
            await hub.report(e, f"Backtest {symbol} {strategy_name} at {to_datetime(when).isoformat()}")
            i += 1
            continue
        outcome = None
        if result.action == "opened" or (result.action == "scheduled" and not state.stopped):
            # (a limit order placed while a stop is pending is dropped by the next tick instead)
            signal_started = time.perf_counter()
            try:
                outcome = await resolve(state, when)
            except Exception as e:  # noqa: BLE001 - the signal stays; later ticks watch it
                await hub.report(e, f"Backtest {symbol} {strategy_name} fast path")
            await timer.sample("backtest_signal", signal_started)
        elif result.action in ("closed", "cancelled"):
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


class BacktestUtils:
    """`bk.Backtest`: run strategies over historical frames and report on them."""

    def __init__(self) -> None:
        self._registry = Registry()

    def _validate(self, symbol: str, strategy_name: str, exchange_name: str, frame_name: str, source: str) -> None:
        registry.validate_symbol(symbol, source)
        registry.validate_strategy_refs(strategy_name, source)
        registry.get_exchange(exchange_name, source)
        registry.get_frame(frame_name, source)

    def run(self, symbol: str, *, strategy_name: str, exchange_name: str,
            frame_name: str) -> AsyncIterator[ClosedResult | CancelledResult]:
        """Backtest `strategy_name` on `symbol`; yields closed and cancelled results."""
        self._validate(symbol, strategy_name, exchange_name, frame_name, "Backtest.run")
        inst = self._registry.get(symbol, strategy_name)
        return self._run(inst, symbol, strategy_name, exchange_name, frame_name)

    async def _run(self, inst, symbol, strategy_name, exchange_name, frame_name, begun=False):
        if not begun:
            inst.begin()
        try:
            async for result in run_frames(inst, symbol, strategy_name, exchange_name, frame_name):
                yield result
        finally:
            inst.end()

    def background(self, symbol: str, *, strategy_name: str, exchange_name: str,
                   frame_name: str) -> Callable[[], None]:
        """Run the backtest without yielding; returns cancel() at once (a graceful stop)."""
        self._validate(symbol, strategy_name, exchange_name, frame_name, "Backtest.background")
        inst = self._registry.get(symbol, strategy_name)
        return run_in_background(
            inst, "Backtest", lambda: self._run(inst, symbol, strategy_name, exchange_name, frame_name, True),
            "done_backtest", DoneEvent(exchange_name, strategy_name, True, symbol))

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """No new signals; a waiting order is dropped; an open position runs to its end."""
        registry.validate_strategy_refs(strategy_name, "Backtest.stop")
        self._registry.get(symbol, strategy_name).stop()

    async def get_data(self, symbol: str, strategy_name: str) -> BacktestStatistics:
        registry.validate_strategy_refs(strategy_name, "Backtest.get_data")
        return backtest_statistics(self._registry.get(symbol, strategy_name).closed)

    async def get_report(self, symbol: str, strategy_name: str, columns=None) -> str:
        registry.validate_strategy_refs(strategy_name, "Backtest.get_report")
        stats = backtest_statistics(self._registry.get(symbol, strategy_name).closed)
        return await render_backtest_report(symbol, strategy_name, stats, columns)

    async def dump(self, symbol: str, strategy_name: str, path: str | None = None, columns=None) -> str:
        """Write the report; `path` is a directory (default ./dump/backtest) or a .md file."""
        text = await self.get_report(symbol, strategy_name, columns)
        return await write_report(report_path(path, "backtest", strategy_name), text)

    async def list(self) -> list[InstanceStatus]:
        return self._registry.statuses()

    def _reset(self) -> None:
        self._registry.clear()


Backtest = BacktestUtils()
