"""The account: capital, the money each trade ties up and makes, and equity at any time.

One account per backtest run, or one shared by every symbol and strategy of a portfolio.
Trades are kept with their open and close times, so a question asked at simulated time t
(what is free to fund a new trade?) sees exactly what was open and closed at t, even when
the backtest's fast path has already resolved a trade that closes after t.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._config import cfg
from ..events import ClosedResult, SignalRow


@dataclass(slots=True)
class _Held:
    open_ts: int
    close_ts: int | None
    notional: float  # quantity x entry price: what the trade ties up while open
    pnl: float       # money made at the close (fees and slippage included)


def pnl_money(row: SignalRow, pnl_percentage: float) -> float:
    """A trade's net PnL in money: its percentage (fees and slippage included) of the notional."""
    return (row.quantity or 0.0) * row.price_open * pnl_percentage / 100


class Account:
    """Equity = capital + the PnL of trades closed so far; free = equity - notional still open."""

    def __init__(self, initial_capital: float | None = None):
        self.initial = float(cfg.CC_INITIAL_CAPITAL if initial_capital is None else initial_capital)
        self._held: dict[str, _Held] = {}  # by signal id

    def equity_at(self, t: int) -> float:
        return self.initial + sum(h.pnl for h in self._held.values() if h.close_ts is not None and h.close_ts <= t)

    def free_at(self, t: int) -> float:
        """Equity at t minus what trades open at t tie up."""
        tied = sum(h.notional for h in self._held.values()
                   if h.open_ts <= t and (h.close_ts is None or t < h.close_ts))
        return self.equity_at(t) - tied

    def opened(self, row: SignalRow) -> None:
        self._held[row.id] = _Held(row.pending_at, None, (row.quantity or 0.0) * row.price_open, 0.0)

    def closed(self, result: ClosedResult) -> None:
        held = self._held.get(result.signal.id)
        if held is None:  # a position restored from saved live state
            held = self._held[result.signal.id] = _Held(result.signal.pending_at, None, 0.0, 0.0)
        held.close_ts = result.close_timestamp
        held.pnl = pnl_money(result.signal, result.pnl.pnl_percentage)

    def forget(self, signal_id: str) -> None:
        """A waiting order that never filled, or a refused open, ties nothing up."""
        self._held.pop(signal_id, None)
