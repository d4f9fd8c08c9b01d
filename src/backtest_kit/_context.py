"""The execution context of strategy and exchange code (contextvars) and its helper functions."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ._time import CANDLE_INTERVALS, interval_ms, iso, to_datetime
from .errors import ContextError, ValidationError

if TYPE_CHECKING:
    from ._candles import Candles
    from ._exchange import ExchangeClient


@dataclass(slots=True)
class ExecutionContext:
    symbol: str
    when: int  # epoch ms
    backtest: bool
    exchange: ExchangeClient
    strategy_name: str = ""


_current: ContextVar[ExecutionContext | None] = ContextVar("backtest_kit_context", default=None)


def current(helper: str) -> ExecutionContext:
    ctx = _current.get()
    if ctx is None:
        raise ContextError(f"bk.{helper}() can only be called inside strategy or exchange code run by "
                           "Backtest, Live or Walker (no execution context is active)")
    return ctx


# enter(ctx) installs ctx and returns the token for leave(token). The ContextVar's own methods:
# the engine enters a context per tick, and a wrapper would cost as much as the call itself.
enter: Callable[[ExecutionContext | None], Token[ExecutionContext | None]] = _current.set
leave: Callable[[Token[ExecutionContext | None]], None] = _current.reset


async def get_candles(symbol: str, interval: str, limit: int) -> Candles:
    """The `limit` most recent closed candles of `interval` at the current time (never a forming one)."""
    ctx = current("get_candles")
    if interval not in CANDLE_INTERVALS:
        raise ValidationError(f"get_candles: unknown interval {interval!r}; use one of {', '.join(CANDLE_INTERVALS)}")
    if type(limit) is not int and (not isinstance(limit, numbers.Integral) or isinstance(limit, bool)) or limit < 1:
        raise ValidationError(f"get_candles: limit must be a positive integer, got {limit!r}")
    if limit > MAX_CANDLES:
        raise ValidationError(f"get_candles: limit must be at most {MAX_CANDLES:,} candles, got {_short(limit)}")
    step = interval_ms(interval)
    if ctx.when // step * step - int(limit) * step < 0:
        raise ValidationError(f"get_candles: {int(limit):,} candles of {interval} before {iso(ctx.when)} reach "
                              "back before 1970-01-01; ask for fewer")
    return await ctx.exchange.window(symbol, interval, ctx.when, int(limit))


MAX_CANDLES = 5_000_000  # about 9.5 years of 1m candles (240 MB of float64 columns) per call


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


async def get_average_price(symbol: str) -> float:
    """VWAP of the last CC_AVG_PRICE_CANDLES_COUNT closed 1m candles."""
    ctx = current("get_average_price")
    return await ctx.exchange.average_price(symbol, ctx.when)


async def format_price(symbol: str, price: float) -> str:
    return await current("format_price").exchange.format_price(symbol, price)


async def format_quantity(symbol: str, quantity: float) -> str:
    return await current("format_quantity").exchange.format_quantity(symbol, quantity)


def get_date() -> datetime:
    """The execution time as a timezone-aware UTC datetime."""
    return to_datetime(current("get_date").when)


def get_mode() -> str:
    return "backtest" if current("get_mode").backtest else "live"
