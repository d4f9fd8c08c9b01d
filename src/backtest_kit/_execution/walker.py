"""Walker: backtest every strategy of a walker schema on one symbol and rank them by a metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Optional

from .. import _registry as registry
from ..errors import BacktestKitError
from .._hub import call_reporting, hub
from .._report.backtest import write_report
from .._report.walker import render_walker_report
from .._schema import callback
from .._engine.stats import BacktestStatistics, backtest_statistics
from .._report.source import report_path
from .backtest import Backtest, run_frames
from .base import DoneEvent, Instance, InstanceStatus, Registry, run_in_background


@dataclass(slots=True)
class WalkerProgress:
    """Yielded by Walker.run after each strategy (also the listen_walker payload)."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    strategy_name: str
    stats: BacktestStatistics
    metric: str
    metric_value: Optional[float]
    best_strategy: Optional[str]
    best_metric: Optional[float]
    strategies_tested: int
    total_strategies: int


@dataclass(slots=True)
class WalkerProgressEvent:
    """Payload of listen_walker_progress."""

    walker_name: str
    exchange_name: str
    frame_name: str
    symbol: str
    total_strategies: int
    processed_strategies: int
    progress: float


@dataclass(slots=True)
class WalkerComplete:
    """Payload of listen_walker_complete and the walker schema's on_complete."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    metric: str
    total_strategies: int
    best_strategy: Optional[str]
    best_metric: Optional[float]
    best_stats: Optional[BacktestStatistics]


@dataclass(slots=True)
class StrategyResult:
    strategy_name: str
    stats: BacktestStatistics
    metric_value: Optional[float]


@dataclass(slots=True)
class WalkerStatistics(WalkerComplete):
    """Walker.get_data: the comparison of one walk on one symbol (D11)."""

    strategy_results: list[StrategyResult] = field(default_factory=list)


def metric_value(stats: BacktestStatistics, metric: str) -> Optional[float]:
    value = getattr(stats, metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class WalkerInstance(Instance):
    """A walker on one symbol: its own backtest instances, so concurrent walks never collide."""

    def __init__(self, symbol: str, name: str):
        super().__init__(symbol, name)
        self.current: Optional[Instance] = None
        self.data: Optional[WalkerStatistics] = None

    def stop(self) -> None:
        super().stop()
        if self.current is not None:
            self.current.stop()


class WalkerUtils:
    """`bk.Walker`: compare strategies on one symbol."""

    def __init__(self) -> None:
        self._registry = Registry(WalkerInstance)

    def run(self, symbol: str, *, walker_name: str) -> AsyncIterator[WalkerProgress]:
        """Backtest each strategy in schema order; yields a WalkerProgress after each."""
        registry.validate_symbol(symbol, "Walker.run")
        registry.validate_walker_refs(walker_name, "Walker.run")
        return self._run(self._get(symbol, walker_name), symbol, walker_name)

    def _get(self, symbol: str, walker_name: str) -> WalkerInstance:
        return self._registry.get(symbol, walker_name)

    async def _run(self, inst: WalkerInstance, symbol: str, walker_name: str, begun: bool = False):
        if not begun:
            inst.begin()
        try:
            async for progress in self._walk(inst, symbol, walker_name):
                yield progress
        finally:
            inst.current = None
            inst.end()

    async def _walk(self, inst: WalkerInstance, symbol: str, walker_name: str):
        schema = registry.get_walker(walker_name, "Walker.run")
        cbs = schema.callbacks
        metric = schema.metric
        names = schema.strategies
        data = inst.data = WalkerStatistics(walker_name, symbol, schema.exchange_name, schema.frame_name,
                                            metric, len(names), None, None, None)
        best_name: Optional[str] = None
        best: Optional[float] = None
        tested = 0
        for name in names:
            if inst._is_stopped:
                break
            await _call(cbs, "on_strategy_start", name, symbol)
            bt = inst.current = Instance(symbol, name)
            bt.begin()
            try:
                async for _ in run_frames(bt, symbol, name, schema.exchange_name, schema.frame_name):
                    pass
            except Exception as e:  # noqa: BLE001 - a failing strategy is reported; the walk goes on
                bt.end()
                await hub.report(e, f"Walker {walker_name} strategy {name}")
                await _call(cbs, "on_strategy_error", name, symbol, e)
                continue
            bt.end()
            _publish_backtest(bt)
            stats = backtest_statistics(bt.closed)
            value = metric_value(stats, metric)
            if value is not None and (best is None or value > best):  # ties keep the earlier one
                best, best_name = value, name
                data.best_stats = stats
            tested += 1
            data.best_strategy, data.best_metric = best_name, best
            data.strategy_results.append(StrategyResult(name, stats, value))
            progress = WalkerProgress(walker_name, symbol, schema.exchange_name, schema.frame_name, name,
                                      stats, metric, value, best_name, best, tested, len(names))
            await hub.emit("walker_progress", WalkerProgressEvent(
                walker_name, schema.exchange_name, schema.frame_name, symbol, len(names), tested,
                tested / len(names)))
            await _call(cbs, "on_strategy_complete", name, symbol, stats, value)
            await hub.emit("walker", progress)
            yield progress
        complete = WalkerComplete(walker_name, symbol, schema.exchange_name, schema.frame_name, metric,
                                  len(names), best_name, best, data.best_stats)
        await _call(cbs, "on_complete", complete)
        await hub.emit("walker_complete", complete)

    def background(self, symbol: str, *, walker_name: str) -> Callable[[], None]:
        """Run the walk without yielding; returns cancel() at once."""
        registry.validate_symbol(symbol, "Walker.background")
        schema = registry.validate_walker_refs(walker_name, "Walker.background")
        inst = self._get(symbol, walker_name)
        return run_in_background(inst, "Walker", lambda: self._run(inst, symbol, walker_name, True),
                                 "done_walker", DoneEvent(schema.exchange_name, walker_name, True, symbol))

    async def stop(self, symbol: str, walker_name: str) -> None:
        """Stop this walk only: the running strategy opens no new signal, the rest are skipped."""
        registry.get_walker(walker_name, "Walker.stop")
        self._get(symbol, walker_name).stop()

    async def get_data(self, symbol: str, walker_name: str) -> WalkerStatistics:
        registry.get_walker(walker_name, "Walker.get_data")
        inst = self._registry._instances.get((symbol, walker_name))
        if inst is None or inst.data is None:
            raise BacktestKitError(f"Walker.get_data: no results for walker {walker_name!r} on {symbol}; "
                                   "run Walker.run or Walker.background first")
        return inst.data

    async def get_report(self, symbol: str, walker_name: str, strategy_columns=None, pnl_columns=None) -> str:
        return await render_walker_report(await self.get_data(symbol, walker_name), strategy_columns, pnl_columns)

    async def dump(self, symbol: str, walker_name: str, path: str | None = None, strategy_columns=None,
                   pnl_columns=None) -> str:
        """Write the report; `path` is a directory (default ./dump/walker) or a .md file."""
        text = await self.get_report(symbol, walker_name, strategy_columns, pnl_columns)
        return await write_report(report_path(path, "walker", walker_name), text)

    async def list(self) -> list[InstanceStatus]:
        return self._registry.statuses()

    def _reset(self) -> None:
        self._registry.clear()


def _publish_backtest(bt: Instance) -> None:
    """Make a walked strategy's trades visible to Backtest.get_data / reports for its symbol."""
    target = Backtest._registry.get(bt.symbol, bt.name)
    if not target._running:
        target.results, target.events, target.perf = bt.results, bt.events, bt.perf
        target._is_done = True


async def _call(cbs, name: str, *args) -> None:
    await call_reporting(callback(cbs, name), *args, where=f"walker callback {name}")


Walker = WalkerUtils()
