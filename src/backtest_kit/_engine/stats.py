"""Statistics over the closed trades of a run: one pure function."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas loads on first use: `import backtest_kit` stays light
    import pandas as pd

from .._config import cfg
from .._equity import EquityStats, TradeArrays, equity_curve, equity_statistics_of, exposure_mask, resampled_last
from .._tabular import Tabular
from ..events import CancelledResult, ClosedResult, OpenedResult, ScheduledResult
from .account import pnl_money
from .runs import RunError

DAY_MS = 86_400_000
STD_EPSILON = 1e-12  # D13: below this a standard deviation is float noise, not dispersion


@dataclass(slots=True)
class BacktestStatistics(Tabular):
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
    data_gaps: int = 0  # runs of missing minutes met in the frame's 1m candles
    longest_gap_minutes: int = 0
    # On the account's equity, marked to market at 1m closes (daily returns for the ratios).
    initial_capital: float | None = None
    final_equity: float | None = None
    total_return_pct: float | None = None
    cagr_pct: float | None = None
    max_drawdown_pct: float | None = None
    max_drawdown_duration_days: float | None = None
    volatility_ann_pct: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    calmar: float | None = None
    exposure_pct: float | None = None
    buy_and_hold_return_pct: float | None = None


def _safe(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _mean(xs: Sequence[float]) -> float:
    s = 0.0
    for x in xs:  # left to right, as the reference sums
        s += x
    return s / len(xs)


EQUITY_FIELDS = ("initial_capital", "final_equity", "total_return_pct", "cagr_pct", "max_drawdown_pct",
                 "max_drawdown_duration_days", "volatility_ann_pct", "sharpe", "sortino", "calmar",
                 "exposure_pct", "buy_and_hold_return_pct")


def describe_error(e: RunError) -> str:
    return f"{e.where}: {type(e.error).__name__}: {e.error}"


def backtest_statistics(closed: Sequence[ClosedResult], equity: EquityStats | None = None,
                        gaps: tuple[int, int] = (0, 0), errors: Sequence[RunError] = ()) -> BacktestStatistics:
    """Every BacktestStatistics field over all closed trades, in close order (D4), plus the
    equity block when the run's equity is known; `gaps` is (data gaps, longest gap in minutes)
    of the frame's 1m data; `errors` are the run's recoverable errors (count and first)."""
    stats = _trade_statistics(list(closed))
    stats.data_gaps, stats.longest_gap_minutes = gaps
    stats.error_count, stats.first_error = len(errors), describe_error(errors[0]) if errors else None
    if equity is not None:
        for name in EQUITY_FIELDS:
            setattr(stats, name, getattr(equity, name))
    return stats


def trade_arrays(closed: Sequence[ClosedResult], ts: np.ndarray) -> TradeArrays:
    """Closed trades as TradeArrays on the candle grid `ts`; fees and slippage are charged so
    that each trade realises exactly its notional x pnl_percentage."""
    if not closed:
        return TradeArrays.empty()
    n = len(ts)
    side = np.array([1 if t.signal.position == "long" else -1 for t in closed], dtype=np.int64)
    qty = np.array([t.signal.quantity or 0.0 for t in closed])
    entry = np.array([t.signal.price_open for t in closed])
    exit_ = np.array([t.current_price for t in closed])
    pct = np.array([t.pnl.pnl_percentage for t in closed])
    # Snap to the candle grid (a trade opened inside a gap is held from the next candle).
    i_in = np.minimum(np.searchsorted(ts, [t.signal.pending_at for t in closed]), n - 1)
    i_out = np.maximum(np.minimum(np.searchsorted(ts, [t.close_timestamp for t in closed]), n - 1), i_in)
    cost = side * qty * (exit_ - entry) - qty * entry * pct / 100  # fees + slippage, in money
    entry_fee = np.clip(qty * entry * (cfg.CC_PERCENT_FEE + cfg.CC_PERCENT_SLIPPAGE) / 100, 0, np.maximum(cost, 0))
    exit_fee = np.maximum(cost - entry_fee, 0.0)
    return TradeArrays(side=side, quantity=np.maximum(qty, 1e-300), entry_ts=ts[i_in], exit_ts=ts[i_out],
                       entry_price=entry, exit_price=exit_, entry_fee=entry_fee, exit_fee=exit_fee)


def equity_series(closed: Sequence[ClosedResult], ts: np.ndarray, close: np.ndarray,
                  initial_capital: float) -> tuple[np.ndarray, np.ndarray]:
    """Equity at each 1m close (open positions marked at the close) and the exposure mask."""
    trades = trade_arrays(closed, ts)
    return equity_curve(ts, close, trades, initial_capital), exposure_mask(ts, trades)


def equity_block(closed: Sequence[ClosedResult], ts: np.ndarray, close: np.ndarray,
                 initial_capital: float) -> EquityStats | None:
    """The equity statistics of a run over its 1m marks (None without marks)."""
    if not len(ts):
        return None
    eq, exposed = equity_series(closed, ts, close, initial_capital)
    labels, last = resampled_last(ts, eq, "1m")
    return equity_statistics_of(labels, last, initial_capital=initial_capital,
                                annualization_days=cfg.CC_ANNUALIZATION_DAYS,
                                exposure_pct=float(exposed.mean() * 100), benchmark=close)


def trades_frame(closed: Sequence[ClosedResult]) -> pd.DataFrame:
    """Closed trades as a DataFrame (one row each, in close order)."""
    import pandas as pd

    rows = []
    for t in closed:
        s, q = t.signal, t.signal.quantity or 0.0
        rows.append({
            "id": s.id, "symbol": t.symbol, "strategy_name": t.strategy_name, "position": s.position,
            "order_type": s.order_type if s.scheduled_at != s.pending_at or s.is_scheduled else "market",
            "open_time": pd.Timestamp(s.pending_at, unit="ms", tz="UTC"),
            "close_time": pd.Timestamp(t.close_timestamp, unit="ms", tz="UTC"),
            "pending_at": s.pending_at, "close_timestamp": t.close_timestamp, "quantity": q,
            "price_open": s.price_open, "price_close": t.current_price, "price_take_profit": s.price_take_profit,
            "price_stop_loss": s.price_stop_loss, "notional": q * s.price_open, "close_reason": t.close_reason,
            "pnl_percentage": t.pnl.pnl_percentage, "pnl_money": pnl_money(s, t.pnl.pnl_percentage),
            "ambiguous_exit": t.ambiguous_exit, "note": s.note})
    columns = ["id", "symbol", "strategy_name", "position", "order_type", "open_time", "close_time", "pending_at",
               "close_timestamp", "quantity", "price_open", "price_close", "price_take_profit", "price_stop_loss",
               "notional", "close_reason", "pnl_percentage", "pnl_money", "ambiguous_exit", "note"]
    return pd.DataFrame(rows, columns=columns)


def _trade_statistics(trades: list[ClosedResult]) -> BacktestStatistics:
    n = len(trades)
    if n == 0:
        return BacktestStatistics()
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
    )


@dataclass(slots=True)
class LiveStatistics(BacktestStatistics):
    """Live.get_data: the closed-trade statistics plus every opened / scheduled / closed /
    cancelled event (`total_signals` counts closed trades)."""

    event_list: list[OpenedResult | ScheduledResult | ClosedResult | CancelledResult] = field(default_factory=list)
    total_events: int = 0
    total_closed: int = 0
