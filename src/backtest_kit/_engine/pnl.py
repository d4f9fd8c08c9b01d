"""Profit and loss of a closed trade, with slippage and fees on both sides."""

from __future__ import annotations

from .._config import cfg
from ..events import PnL


def pnl_percentage(position: str, price_open: float, price_close: float) -> float:
    """Net PnL in percent: slippage moves both fills against the trade, then 2 fees are taken."""
    s = cfg.CC_PERCENT_SLIPPAGE
    f = cfg.CC_PERCENT_FEE
    if position == "long":
        o = price_open * (1 + s / 100)
        c = price_close * (1 - s / 100)
        pct = (c - o) / o * 100
    else:
        o = price_open * (1 - s / 100)
        c = price_close * (1 + s / 100)
        pct = (o - c) / o * 100
    return pct - 2 * f


def compute_pnl(position: str, price_open: float, price_close: float) -> PnL:
    """PnL record with the raw (not slippage-adjusted) prices, as the reference reports them."""
    return PnL(pnl_percentage(position, price_open, price_close), price_open, price_close)
