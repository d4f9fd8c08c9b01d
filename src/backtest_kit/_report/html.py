"""HTML pages of runs: the run log's candles, trades and equity handed to the chart renderer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._engine.account import pnl_money
from .._engine.runs import Run
from .._engine.stats import BacktestStatistics, equity_series
from .._html import render_backtest_html, render_comparison_html
from .._html.render import Heatmap
from .._schema import LOWER_IS_BETTER
from ..events import ClosedResult, SweepTrial
from .backtest import headline

Curve = tuple[np.ndarray, np.ndarray]


def _trades(closed: Sequence[ClosedResult]) -> list[dict[str, object]]:
    return [{"open_ts": t.signal.pending_at, "close_ts": t.close_timestamp, "side": t.signal.position,
             "price_open": t.signal.price_open, "price_close": t.current_price,
             "take_profit": t.signal.price_take_profit, "stop_loss": t.signal.price_stop_loss,
             "close_reason": t.close_reason, "pnl_pct": t.pnl.pnl_percentage,
             "pnl_money": pnl_money(t.signal, t.pnl.pnl_percentage)} for t in closed]


async def equity_curve_of(run: Run) -> Curve | None:
    marks = await run.marks()
    if marks is None or not len(marks[0]):
        return None
    eq, _ = equity_series(run.closed, *marks, run.initial_capital)
    return marks[0], eq


async def backtest_page(run: Run, stats: BacktestStatistics, title: str) -> str:
    """Candles with every trade, equity and drawdown, the statistics and the sortable trades."""
    c = await run.candles()
    candles = {k: getattr(c, k) for k in ("timestamp", "open", "high", "low", "close", "volume")} if c is not None \
        else {k: np.empty(0) for k in ("timestamp", "open", "high", "low", "close", "volume")}
    return render_backtest_html(title=title, symbol=run.symbol, candles=candles, trades=_trades(run.closed),
                                equity=await equity_curve_of(run), stats=headline(stats))


def comparison_page(title: str, curves: dict[str, Curve], metric_name: str, metrics: dict[str, float | None],
                    rows: Sequence[Mapping[str, object]], heatmap: Heatmap | None = None) -> str:
    """Equity curves side by side, the metric per strategy (or trial), an optional parameter heatmap and a
    table of their statistics."""
    return render_comparison_html(title=title, curves=curves, metric_name=metric_name, metrics=metrics,
                                  stats_rows=rows, heatmap=heatmap, lower_is_better=metric_name in LOWER_IS_BETTER)


MAX_AXIS = 40  # distinct values on a heatmap axis; more (a continuous search) are binned
BINS = 10


def _axis(values: list[Any]) -> tuple[list[Any], Callable[[Any], Any]]:
    """The axis labels and the label of a value: the distinct values, or equal-width bins (their centres)."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(distinct) <= MAX_AXIS or not all(isinstance(v, (int, float)) for v in distinct):
        return distinct, lambda v: v
    lo, hi = float(distinct[0]), float(distinct[-1])
    width = (hi - lo) / BINS
    centres = [round(lo + (k + 0.5) * width, 6) for k in range(BINS)]
    return centres, lambda v: centres[min(int((float(v) - lo) / width), BINS - 1)]


def sweep_heatmap(trials: Sequence[SweepTrial], metric: str) -> Heatmap | None:
    """The best metric over the first two parameters that vary (any other parameters: the best of them)."""
    done = [t for t in trials if t.metric_value is not None]
    names = [n for n in (done[0].params if done else {}) if len({repr(t.params.get(n)) for t in done}) > 1]
    if len(names) < 2:
        return None
    x_name, y_name = names[0], names[1]
    xs, x_of = _axis([t.params[x_name] for t in done])
    ys, y_of = _axis([t.params[y_name] for t in done])
    grid = np.full((len(ys), len(xs)), np.nan)
    for t in done:
        i, j = ys.index(y_of(t.params[y_name])), xs.index(x_of(t.params[x_name]))
        value = float(t.metric_value)  # type: ignore[arg-type]
        if not value <= grid[i, j]:  # NaN (empty) or a better one
            grid[i, j] = value
    return x_name, y_name, xs, ys, grid
