"""Walker: backtest every strategy of a walker schema on one symbol and rank them by a metric."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from typing import Any

from .. import _registry as registry
from .._engine.runs import runs
from .._engine.stats import BacktestStatistics
from .._exchange import ExchangeClient
from .._hub import call_reporting, hub
from .._report.backtest import headline
from .._report.html import comparison_page, equity_curve_of
from .._report.walker import render_walker_report
from .._schema import callback, score
from ..errors import BacktestKitError
from ..events import DoneEvent, StrategyResult, WalkerComplete, WalkerProgress, WalkerProgressEvent, WalkerStatistics
from .backtest import attach_marks
from .base import BackgroundRun, Facade, Instance, check_format
from .executors import Scope, executor
from .trial import TrialSpec


def metric_value(stats: BacktestStatistics, metric: str) -> float | None:
    value = getattr(stats, metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class WalkerInstance(Instance):
    """A walker on one symbol; stop() also reaches the machine of the strategy being walked."""

    def __init__(self, symbol: str, name: str):
        super().__init__(symbol, name)
        self.data: WalkerStatistics | None = None


class WalkerUtils(Facade[WalkerInstance]):
    """`bk.Walker`: compare strategies on one symbol."""

    kind, done_topic, folder = "Walker", "done_walker", "walker"

    def __init__(self) -> None:
        super().__init__(WalkerInstance)

    def run(self, symbol: str, *, walker_name: str) -> AsyncIterator[WalkerProgress]:
        """Backtest each strategy in schema order; yields a WalkerProgress after each."""
        registry.validate_symbol(symbol, "Walker.run")
        schema = registry.validate_walker_refs(walker_name, "Walker.run")
        symbol = registry.canonical_symbol(symbol, schema.exchange_name)
        inst = self._registry.get(symbol, walker_name)
        return self._guarded(inst, lambda: self._walk(inst, symbol, walker_name))

    async def _walk(self, inst: WalkerInstance, symbol: str, walker_name: str) -> AsyncIterator[WalkerProgress]:
        schema = registry.get_walker(walker_name, "Walker.run")
        cbs = schema.callbacks
        metric = schema.metric
        names = schema.strategies
        data = inst.data = WalkerStatistics(walker_name, symbol, schema.exchange_name, schema.frame_name,
                                            metric, len(names), None, None, None)
        best_name: str | None = None
        best: float | None = None
        tested = 0
        specs = [TrialSpec(i, symbol, schema.exchange_name, schema.frame_name, strategy_name=name)
                 for i, name in enumerate(names)]

        async def before(spec: TrialSpec) -> None:
            await _call(cbs, "on_strategy_start", spec.strategy_name, symbol)

        ex = executor(schema.executor)
        await ex.start(Scope(symbol, schema.exchange_name, schema.frame_name, strategy_names=tuple(names)))
        exchange = ExchangeClient(registry.get_exchange(schema.exchange_name, "Walker.run"), backtest=True)
        frame = registry.get_frame(schema.frame_name, "Walker.run")
        results: dict[int, StrategyResult] = {}
        try:
            async for outcome in ex.map(specs, lambda: inst.stopped, before, inst.attach):
                name = names[outcome.number]
                if outcome.run is None or outcome.stats is None:
                    e = outcome.exception or BacktestKitError(outcome.error or "failed")
                    await hub.report(e, f"Walker {walker_name} strategy {name}")
                    await _call(cbs, "on_strategy_error", name, symbol, e)
                    continue
                # The walked strategy's run goes to the run log like any backtest, so Backtest,
                # Risk, Partial and Schedule reports see it, wherever it ran.
                if outcome.run.mark_source is None:
                    attach_marks(outcome.run, exchange, frame.start_ms, frame.end_ms)
                runs.put(outcome.run)
                stats = outcome.stats
                value = metric_value(stats, metric)
                best_stats = data.best_stats
                new, old = score(metric, value), score(metric, best)
                if new is not None and (old is None or new > old
                                        or (new == old and outcome.number < names.index(best_name or name))):
                    best, best_name, best_stats = value, name, stats  # ties keep the earlier one
                tested += 1
                results[outcome.number] = StrategyResult(name, stats, value)
                data = inst.data = dataclasses.replace(
                    data, best_strategy=best_name, best_metric=best, best_stats=best_stats,
                    strategy_results=[results[i] for i in sorted(results)])
                progress = WalkerProgress(walker_name, symbol, schema.exchange_name, schema.frame_name, name,
                                          stats, metric, value, best_name, best, tested, len(names))
                await hub.emit("walker_progress", WalkerProgressEvent(
                    walker_name, schema.exchange_name, schema.frame_name, symbol, len(names), tested,
                    tested / len(names)))
                await _call(cbs, "on_strategy_complete", name, symbol, stats, value)
                await hub.emit("walker", progress)
                yield progress
        finally:
            await ex.close()
        complete = WalkerComplete(walker_name, symbol, schema.exchange_name, schema.frame_name, metric,
                                  len(names), best_name, best, data.best_stats)
        await _call(cbs, "on_complete", complete)
        await hub.emit("walker_complete", complete)

    def background(self, symbol: str, *, walker_name: str) -> BackgroundRun:
        """Run the walk without yielding; returns cancel() at once."""
        registry.validate_symbol(symbol, "Walker.background")
        schema = registry.validate_walker_refs(walker_name, "Walker.background")
        symbol = registry.canonical_symbol(symbol, schema.exchange_name)
        inst = self._registry.get(symbol, walker_name)
        return self._background(inst, lambda: self._walk(inst, symbol, walker_name),
                                DoneEvent(schema.exchange_name, walker_name, True, symbol))

    async def stop(self, symbol: str, walker_name: str) -> None:
        """Stop this walk only: the running strategy opens no new signal, the rest are skipped."""
        registry.get_walker(walker_name, "Walker.stop")
        self._stop(symbol, walker_name)

    async def get_data(self, symbol: str, walker_name: str) -> WalkerStatistics:
        registry.get_walker(walker_name, "Walker.get_data")
        data: WalkerStatistics = self._results(symbol, walker_name, "walker")
        return data

    async def get_report(self, symbol: str, walker_name: str, strategy_columns: Any = None,
                         pnl_columns: Any = None) -> str:
        return await render_walker_report(await self.get_data(symbol, walker_name), strategy_columns, pnl_columns)

    async def dump(self, symbol: str, walker_name: str, path: str | None = None, strategy_columns: Any = None,
                   pnl_columns: Any = None, format: str = "md") -> str:
        """Write the report; `path` is a directory (default ./dump/walker) or a .md / .html file.
        `format="html"`: the strategies' equity curves, the metric per strategy and their statistics."""
        ext = check_format(format, "Walker.dump")
        if ext == ".md":
            text = await self.get_report(symbol, walker_name, strategy_columns, pnl_columns)
            return await self._dump(text, path, walker_name)
        data = await self.get_data(symbol, walker_name)
        curves, metrics, rows = {}, {}, []
        for result in data.strategy_results:
            run = runs.get("backtest", symbol, result.strategy_name)
            curve = await equity_curve_of(run) if run is not None else None
            if curve is not None:
                curves[result.strategy_name] = curve
            metrics[result.strategy_name] = result.metric_value
            rows.append({"strategy": result.strategy_name, **{label: text for label, text in headline(result.stats)}})
        page = comparison_page(f"Walker {walker_name} on {symbol}", curves, data.metric, metrics, rows)
        return await self._dump(page, path, walker_name, ext)


async def _call(cbs: Any, name: str, *args: Any) -> None:
    await call_reporting(callback(cbs, name), *args, where=f"walker callback {name}")


Walker = WalkerUtils()
