"""The account: capital, the money each trade ties up and makes, and equity at any time.

One account per backtest run, or one shared by every symbol and strategy of a portfolio.
Trades are kept with their open and close times, so a question asked at simulated time t
(what is free to fund a new trade?) sees exactly what was open and closed at t, even when
the backtest's fast path has already resolved a trade that closes after t.
"""

from __future__ import annotations

import bisect
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
    """Equity = capital + the PnL of trades closed so far; free = equity - notional still open.

    Closed trades are kept sorted by close time with a running PnL sum, so a question at time t
    costs a bisection plus the few trades that close after t (a backtest's fast path resolves
    trades ahead of the frame that asks)."""

    def __init__(self, initial_capital: float | None = None):
        self.initial = float(cfg.CC_INITIAL_CAPITAL if initial_capital is None else initial_capital)
        self._open: dict[str, _Held] = {}  # by signal id: positions not closed yet
        self._close_ts: list[int] = []     # closed trades, by close time
        self._closed: list[_Held] = []
        self._cum_pnl: list[float] = []    # running PnL sum over _closed

    def _closed_by(self, t: int) -> int:
        """How many closed trades closed at or before t."""
        return bisect.bisect_right(self._close_ts, t)

    def equity_at(self, t: int) -> float:
        k = self._closed_by(t)
        return self.initial + (self._cum_pnl[k - 1] if k else 0.0)

    def free_at(self, t: int) -> float:
        """Equity at t minus what trades open at t tie up."""
        tied = sum(h.notional for h in self._open.values() if h.open_ts <= t)
        tied += sum(h.notional for h in self._closed[self._closed_by(t):] if h.open_ts <= t)
        return self.equity_at(t) - tied

    def opened(self, row: SignalRow) -> None:
        self._open[row.id] = _Held(row.pending_at, None, (row.quantity or 0.0) * row.price_open, 0.0)

    def closed(self, result: ClosedResult) -> None:
        held = self._open.pop(result.signal.id, None)
        if held is None:  # a position restored from saved live state, or a journal trade
            held = _Held(result.signal.pending_at, None, 0.0, 0.0)
        held.close_ts = result.close_timestamp
        held.pnl = pnl_money(result.signal, result.pnl.pnl_percentage)
        k = self._closed_by(held.close_ts)
        self._close_ts.insert(k, held.close_ts)
        self._closed.insert(k, held)
        self._cum_pnl.insert(k, held.pnl)
        for i in range(k, len(self._cum_pnl)):  # usually just the new last one
            self._cum_pnl[i] = (self._cum_pnl[i - 1] if i else 0.0) + self._closed[i].pnl
