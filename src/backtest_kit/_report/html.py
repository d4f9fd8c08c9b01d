"""HTML pages of runs: the run log's candles, trades and equity handed to the chart renderer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .._engine.account import pnl_money
from .._engine.runs import Run
from .._engine.stats import BacktestStatistics, equity_series
from .._html import render_backtest_html, render_comparison_html
from ..events import ClosedResult
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
                    rows: Sequence[Mapping[str, object]]) -> str:
    """Equity curves side by side, the metric per strategy and a table of their statistics."""
    return render_comparison_html(title=title, curves=curves, metric_name=metric_name, metrics=metrics,
                                  stats_rows=rows)
