"""Statistics over the closed trades of a run: one pure function."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..events import CancelledResult, ClosedResult, OpenedResult, ScheduledResult
from .runs import RunError

DAY_MS = 86_400_000
STD_EPSILON = 1e-12  # D13: below this a standard deviation is float noise, not dispersion


@dataclass(slots=True)
class BacktestStatistics:
    signal_list: list = field(default_factory=list)
    total_signals: int = 0
    win_count: int = 0
    loss_count: int = 0
    win_rate: float | None = None
    avg_pnl: float | None = None
    total_pnl: float | None = None
    std_dev: float | None = None
    sharpe_ratio: float | None = None
    annualized_sharpe_ratio: float | None = None
    certainty_ratio: float | None = None
    expected_yearly_returns: float | None = None
    max_drawdown: float | None = None
    profit_factor: float | None = None
    avg_duration_minutes: float | None = None
    ambiguous_exit_count: int = 0  # trades whose exit candle reached both TP and SL
    error_count: int = 0  # errors of user code or the exchange during the run (the run went on)
    first_error: str | None = None  # "<where>: <ExceptionType>: <message>" of the first of them


def _safe(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _mean(xs: Sequence[float]) -> float:
    s = 0.0
    for x in xs:  # left to right, as the reference sums
        s += x
    return s / len(xs)


def describe_error(e: RunError) -> str:
    return f"{e.where}: {type(e.error).__name__}: {e.error}"


def backtest_statistics(closed: Sequence[ClosedResult], errors: Sequence[RunError] = ()) -> BacktestStatistics:
    """Every BacktestStatistics field over all closed trades, in close order (D4), with the
    run's error count and first error."""
    trades = list(closed)
    n = len(trades)
    error_count, first_error = len(errors), describe_error(errors[0]) if errors else None
    if n == 0:
        return BacktestStatistics(error_count=error_count, first_error=first_error)
    pnls = [t.pnl.pnl_percentage for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    total = 0.0
    for p in pnls:
        total += p
    avg = total / n
    var = 0.0
    for p in pnls:
        var += (p - avg) ** 2
    std = math.sqrt(var / n)
    if std < STD_EPSILON:
        std = 0.0
    sharpe = avg / std if std > 0 else 0.0
    avg_win = _mean(wins) if wins else 0.0
    avg_loss = _mean(losses) if losses else 0.0
    certainty = avg_win / abs(avg_loss) if avg_loss < 0 else 0.0
    durations = [t.close_timestamp - t.signal.pending_at for t in trades]
    avg_days = _mean(durations) / DAY_MS
    yearly = avg * 365 / avg_days if avg_days > 0 else 0.0
    peak = equity = drawdown = 0.0
    for p in pnls:
        equity += p
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    gross_win = sum(wins)
    gross_loss = -sum(losses)
    return BacktestStatistics(
        signal_list=trades,
        total_signals=n,
        win_count=len(wins),
        loss_count=len(losses),
        win_rate=_safe(len(wins) / n * 100),
        avg_pnl=_safe(avg),
        total_pnl=_safe(total),
        std_dev=_safe(std),
        sharpe_ratio=_safe(sharpe),
        annualized_sharpe_ratio=_safe(sharpe * math.sqrt(365)),
        certainty_ratio=_safe(certainty),
        expected_yearly_returns=_safe(yearly),
        max_drawdown=_safe(drawdown),
        profit_factor=_safe(gross_win / gross_loss) if gross_loss > 0 else None,
        avg_duration_minutes=_safe(_mean(durations) / 60_000),
        ambiguous_exit_count=sum(1 for t in trades if t.ambiguous_exit),
        error_count=error_count,
        first_error=first_error,
    )


@dataclass(slots=True)
class LiveStatistics(BacktestStatistics):
    """Live.get_data: the closed-trade statistics plus every opened / scheduled / closed /
    cancelled event (`total_signals` counts closed trades)."""

    event_list: list[OpenedResult | ScheduledResult | ClosedResult | CancelledResult] = field(default_factory=list)
    total_events: int = 0
    total_closed: int = 0
