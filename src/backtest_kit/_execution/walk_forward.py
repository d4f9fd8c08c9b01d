"""WalkForward: optimise a sweep on each train window, trade the winner on the test window after it,
and stitch the test windows into one out-of-sample record, with signs of overfitting."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .. import _registry as registry
from .._engine.runs import Run
from .._exchange import ExchangeClient
from .._hub import hub
from .._report.backtest import headline
from .._report.html import comparison_page, equity_curve_of
from .._report.sweep import render_walk_forward_report
from .._schema import SweepSchema, WalkForwardSchema
from .._time import interval_ms
from ..errors import ValidationError
from ..events import DoneEvent, WalkForwardProgress, WalkForwardStatistics, WalkForwardWindow
from .backtest import attach_marks, statistics_of
from .base import BackgroundRun, Facade, Instance, check_format
from .executors import Executor, Scope, executor
from .sweep import Trials, metric_of, run_trials
from .trial import TrialSpec


def plan(start: int, end: int, schema: WalkForwardSchema) -> list[tuple[int, int, int, int]]:
    """(train_start, train_end, test_start, test_end) per window, half-open, inside [start, end).

    >>> from backtest_kit._schema import WalkForwardSchema
    >>> day = 86_400_000
    >>> plan(0, 10 * day, WalkForwardSchema("w", "s", "4d", "2d"))  # doctest: +NORMALIZE_WHITESPACE
    [(0, 345600000, 345600000, 518400000), (172800000, 518400000, 518400000, 691200000),
     (345600000, 691200000, 691200000, 864000000)]
    """
    out: list[tuple[int, int, int, int]] = []
    k = 0
    while True:
        train_start = start + k * schema.step_ms
        train_end = train_start + schema.train_ms
        test_end = train_end + schema.test_ms
        if test_end > end:
            return out
        out.append((start if schema.anchored else train_start, train_end, train_end, test_end))
        k += 1


def overfitting(windows: Sequence[WalkForwardWindow]) -> tuple[float | None, float | None, dict[str, float]]:
    """(out-of-sample / in-sample mean metric, share of winners below the OOS median, parameter stability)."""
    both = [(w.in_sample_metric, w.out_of_sample_metric) for w in windows
            if w.in_sample_metric is not None and w.out_of_sample_metric is not None]
    mean_is = statistics.fmean(i for i, _ in both) if both else None
    efficiency = (statistics.fmean(o for _, o in both) / mean_is) if both and mean_is and mean_is > 0 else None
    judged = [w for w in windows if w.out_of_sample_metric is not None and w.out_of_sample_median is not None]
    below = (sum(w.out_of_sample_metric < w.out_of_sample_median for w in judged)  # type: ignore[operator]
             / len(judged)) if judged else None
    chosen = [w.params for w in windows if w.params]
    stability: dict[str, float] = {}
    for name in (chosen[0] if chosen else {}):
        counts = Counter(repr(p.get(name)) for p in chosen)
        stability[name] = counts.most_common(1)[0][1] / len(chosen)
    return efficiency, below, stability


class WalkInstance(Instance):
    def __init__(self, symbol: str, name: str):
        super().__init__(symbol, name)
        self.data: WalkForwardStatistics | None = None
        self.run: Run | None = None  # the stitched out-of-sample run


class WalkForwardUtils(Facade[WalkInstance]):
    """`bk.WalkForward`: walk-forward validation of a sweep on one symbol."""

    kind, done_topic, folder = "WalkForward", "done_walk_forward", "walk_forward"

    def __init__(self) -> None:
        super().__init__(WalkInstance)

    def _open(self, symbol: str, walk_name: str, method: str) -> tuple[WalkInstance, str, WalkForwardSchema,
                                                                        SweepSchema]:
        registry.validate_symbol(symbol, method)
        walk = registry.get_walk_forward(walk_name, method)
        try:
            sweep = registry.validate_sweep_refs(walk.sweep_name, method)
        except ValidationError as error:
            raise ValidationError(f"{error}; referenced by walk-forward {walk_name!r}") from None
        frame = registry.get_frame(sweep.frame_name, method)
        if not plan(frame.start_ms, frame.end_ms + interval_ms(frame.interval), walk):
            raise ValidationError(f"{method}: walk-forward {walk_name!r} needs train + test "
                                  f"({(walk.train_ms + walk.test_ms) // 86_400_000} days) inside frame "
                                  f"{sweep.frame_name!r}, which is shorter")
        symbol = registry.canonical_symbol(symbol, sweep.exchange_name)
        return self._registry.get(symbol, walk_name), symbol, walk, sweep

    def run(self, symbol: str, *, walk_name: str) -> AsyncIterator[WalkForwardProgress]:
        """Walk every window; yields a WalkForwardProgress after each."""
        inst, symbol, walk, sweep = self._open(symbol, walk_name, "WalkForward.run")
        return self._guarded(inst, lambda: self._walk(inst, symbol, walk, sweep))

    def background(self, symbol: str, *, walk_name: str) -> BackgroundRun:
        inst, symbol, walk, sweep = self._open(symbol, walk_name, "WalkForward.background")
        return self._background(inst, lambda: self._walk(inst, symbol, walk, sweep),
                                DoneEvent(sweep.exchange_name, walk_name, True, symbol))

    async def _walk(self, inst: WalkInstance, symbol: str, walk: WalkForwardSchema,
                    sweep: SweepSchema) -> AsyncIterator[WalkForwardProgress]:
        frame = registry.get_frame(sweep.frame_name, "WalkForward.run")
        windows = plan(frame.start_ms, frame.end_ms + interval_ms(frame.interval), walk)
        inst.data = None  # a new walk: nothing of the previous one is its result
        done: list[WalkForwardWindow] = []
        tested: list[Run] = []
        ex = executor(sweep.executor)
        await ex.start(Scope(symbol, sweep.exchange_name, sweep.frame_name, sweep_name=sweep.sweep_name))
        try:
            for k, (train_start, train_end, test_start, test_end) in enumerate(windows):
                if inst.stopped:
                    break
                window, run = await self._window(ex, inst, symbol, walk, sweep, k,
                                                 (train_start, train_end, test_start, test_end))
                done.append(window)
                if run is not None:
                    tested.append(run)
                inst.data = await self._statistics(symbol, walk, sweep, done, tested, inst)
                progress = WalkForwardProgress(walk.walk_name, symbol, window, len(done), len(windows))
                await hub.emit("walk_forward", progress)
                yield progress
        finally:
            await ex.close()
        if inst.data is None:  # stopped before the first window; otherwise the last window's are final
            inst.data = await self._statistics(symbol, walk, sweep, done, tested, inst)

    async def _window(self, ex: Executor, inst: WalkInstance, symbol: str, walk: WalkForwardSchema,
                      sweep: SweepSchema, k: int, bounds: tuple[int, int, int, int]) -> tuple[WalkForwardWindow,
                                                                                            Run | None]:
        train_start, train_end, test_start, test_end = bounds
        trials = Trials(sweep.metric)
        study = f"{sweep.sweep_name}:{symbol}:{walk.walk_name}:{k}"
        async for _ in run_trials(sweep, symbol, ex, lambda: inst.stopped, trials, (train_start, train_end - 1),
                                  study, f"WalkForward {walk.walk_name}"):
            pass
        best = trials.best
        # Every distinct parameter set on the test window: the winner's run, and the median it is judged by.
        sets: list[dict[str, Any]] = []
        for t in trials.all:
            if t.error is None and t.params not in sets:
                sets.append(t.params)
        specs = [TrialSpec(i, symbol, sweep.exchange_name, sweep.frame_name, sweep_name=sweep.sweep_name,
                           params=p, window=(test_start, test_end - 1)) for i, p in enumerate(sets)]
        values: list[float] = []
        winner_run: Run | None = None
        winner_stats = None
        async for outcome in ex.map(specs, lambda: False):
            value = metric_of(outcome.stats, sweep.metric)
            if value is not None:
                values.append(value)
            if best is not None and outcome.params == best.params:
                winner_run, winner_stats = outcome.run, outcome.stats
        window = WalkForwardWindow(
            k, train_start, train_end, test_start, test_end, best.params if best else None,
            best.metric_value if best else None, metric_of(winner_stats, sweep.metric),
            statistics.median(values) if values else None, winner_stats)
        return window, winner_run

    async def _statistics(self, symbol: str, walk: WalkForwardSchema, sweep: SweepSchema,
                          windows: list[WalkForwardWindow], tested: list[Run], inst: WalkInstance
                          ) -> WalkForwardStatistics:
        """The test windows' winners as one run: their trades in close order, equity over the test span."""
        run = Run("backtest", symbol, f"{walk.walk_name}[out-of-sample]")
        for r in tested:
            run.results.extend(r.results)
            run.events.extend(r.events)
            run.errors.extend(r.errors)
            run.initial_capital = r.initial_capital
        run.results.sort(key=lambda r: r.close_timestamp)
        run.gaps = (sum(r.gaps[0] for r in tested), max((r.gaps[1] for r in tested), default=0))
        if windows:
            exchange = ExchangeClient(registry.get_exchange(sweep.exchange_name, "WalkForward.run"), backtest=True)
            attach_marks(run, exchange, windows[0].test_start, windows[-1].test_end - 1)
        inst.run = run
        oos = await statistics_of(run, f"WalkForward {walk.walk_name}")
        run.release()
        efficiency, below, stability = overfitting(windows)
        return WalkForwardStatistics(walk.walk_name, sweep.sweep_name, symbol, sweep.metric, list(windows), oos,
                                     efficiency, below, stability)

    async def stop(self, symbol: str, walk_name: str) -> None:
        """No new window or trial; the running ones finish."""
        registry.get_walk_forward(walk_name, "WalkForward.stop")
        self._stop(symbol, walk_name)

    async def get_data(self, symbol: str, walk_name: str) -> WalkForwardStatistics:
        registry.get_walk_forward(walk_name, "WalkForward.get_data")
        data: WalkForwardStatistics = self._results(symbol, walk_name, "walk-forward")
        return data

    async def get_report(self, symbol: str, walk_name: str) -> str:
        return await render_walk_forward_report(await self.get_data(symbol, walk_name))

    async def dump(self, symbol: str, walk_name: str, path: str | None = None, format: str = "md") -> str:
        """Write the report; `path` is a directory (default ./dump/walk_forward) or a .md / .html file.
        `format="html"`: the stitched out-of-sample equity, the metric per window and each window's row."""
        ext = check_format(format, "WalkForward.dump")
        data = await self.get_data(symbol, walk_name)
        if ext == ".md":
            return await self._dump(await render_walk_forward_report(data), path, walk_name)
        inst = self._registry.get(registry.canonical_symbol(symbol), walk_name)
        curves = {}
        if inst.run is not None:
            curve = await equity_curve_of(inst.run)
            if curve is not None:
                curves["out-of-sample"] = curve
        metrics: dict[str, float | None] = {}
        rows = []
        for w in data.windows:
            name = f"window {w.index + 1}"
            metrics[name] = w.out_of_sample_metric
            params = ", ".join(f"{k}={v}" for k, v in (w.params or {}).items())
            rows.append({"window": str(w.index + 1), "params": params,
                         "in-sample": _num(w.in_sample_metric), "out-of-sample": _num(w.out_of_sample_metric),
                         "OOS median": _num(w.out_of_sample_median),
                         **({lbl: text for lbl, text in headline(w.stats)} if w.stats is not None else {})})
        page = comparison_page(f"Walk-forward {walk_name} on {data.symbol}", curves, data.metric, metrics, rows)
        return await self._dump(page, path, walk_name, ext)


def _num(x: float | None) -> str:
    return "N/A" if x is None else f"{x:.4f}"


WalkForward = WalkForwardUtils()
