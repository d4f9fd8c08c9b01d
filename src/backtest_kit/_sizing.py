"""Position sizing: a standalone calculator over the sizing schemas registered with add_sizing.

`PositionSize.fixed_percentage / kelly_criterion / atr_based` look up the named schema, check
that its method matches the call, validate the inputs, compute the quantity (base-asset units,
percentages in percent), apply the caps in the reference order (max_position_percentage, then
min_position_size, then max_position_size: max wins over min) and finally call the schema's
`on_calculate(quantity, params)` callback (sync or async; its errors go to listen_error).
Sizing is not wired into strategy execution.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from . import _registry as registry
from ._hub import call_reporting
from ._schema import SizingSchema, callback
from .errors import ValidationError

__all__ = ["PositionSize", "SizingCalculateParams"]


@dataclass(slots=True, kw_only=True)
class SizingCalculateParams:
    """What on_calculate receives: the common inputs, the method, and that method's own inputs
    (the inputs of the other methods stay None)."""

    symbol: str
    account_balance: float
    price_open: float
    method: str
    price_stop_loss: float | None = None
    win_rate: float | None = None
    win_loss_ratio: float | None = None
    atr: float | None = None


def _show(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    plain_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return text if plain_number else f"{text} ({type(value).__name__})"


def _real(source: str, name: str, value: Any) -> float:
    """A finite real number (not bool) as float, else a ValidationError naming parameter and value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValidationError(f"{source}: {name} must be a finite number, got {_show(value)}")
    return float(value)


def _positive(source: str, name: str, value: Any) -> float:
    number = _real(source, name, value)
    if number <= 0:
        raise ValidationError(f"{source}: {name} must be positive, got {_show(value)}")
    return number


def _schema(source: str, method: str, sizing_name: str) -> SizingSchema:
    """The schema registered as sizing_name, checked to use `method`."""
    schema = registry.get_sizing(sizing_name, source)
    if schema.method != method:
        raise ValidationError(f"sizing {sizing_name!r} uses method {schema.method!r}, not {method!r} "
                              f"(called from {source})")
    return schema


def _common(source: str, symbol: Any, account_balance: Any, price_open: Any) -> tuple[str, float, float]:
    if not isinstance(symbol, str) or not symbol:
        raise ValidationError(f"{source}: symbol must be a non-empty str, got {_show(symbol)}")
    return symbol, _positive(source, "account_balance", account_balance), _positive(source, "price_open", price_open)


async def _finish(schema: SizingSchema, quantity: float, params: SizingCalculateParams) -> float:
    """Apply the caps (reference order) and call on_calculate with the final quantity."""
    caps = schema.params
    balance, price_open = params.account_balance, params.price_open
    pct = caps.get("max_position_percentage")
    if pct is not None:
        quantity = min(quantity, balance * pct / 100 / price_open)
    low = caps.get("min_position_size")
    if low is not None:
        quantity = max(quantity, float(low))
    high = caps.get("max_position_size")
    if high is not None:
        quantity = min(quantity, float(high))
    await call_reporting(callback(schema.callbacks, "on_calculate"), quantity, params,
                         where=f"sizing {schema.sizing_name!r} on_calculate")
    return quantity


class PositionSize:
    """Position-size calculators (async class methods), one per sizing method."""

    @classmethod
    async def fixed_percentage(cls, symbol: str, account_balance: float, price_open: float,
                               price_stop_loss: float, *, sizing_name: str) -> float:
        """Risk risk_percentage % of the balance between price_open and the stop-loss:
        qty = balance * risk_percentage / 100 / |price_open - price_stop_loss|."""
        source = "PositionSize.fixed_percentage"
        schema = _schema(source, "fixed-percentage", sizing_name)
        symbol, balance, price_open = _common(source, symbol, account_balance, price_open)
        stop_loss = _positive(source, "price_stop_loss", price_stop_loss)
        distance = abs(price_open - stop_loss)
        if distance == 0:
            raise ValidationError(f"{source}: stop-loss distance cannot be zero "
                                  f"(price_open={price_open!r}, price_stop_loss={stop_loss!r})")
        quantity = balance * schema.params["risk_percentage"] / 100 / distance
        params = SizingCalculateParams(symbol=symbol, account_balance=balance, price_open=price_open,
                                       method=schema.method, price_stop_loss=stop_loss)
        return await _finish(schema, quantity, params)

    @classmethod
    async def kelly_criterion(cls, symbol: str, account_balance: float, price_open: float,
                              win_rate: float, win_loss_ratio: float, *, sizing_name: str) -> float:
        """Fractional Kelly: k = (win_rate*R - (1-win_rate)) / R with R = win_loss_ratio;
        qty = balance * max(0, k) * kelly_multiplier / price_open."""
        source = "PositionSize.kelly_criterion"
        schema = _schema(source, "kelly-criterion", sizing_name)
        symbol, balance, price_open = _common(source, symbol, account_balance, price_open)
        rate = _real(source, "win_rate", win_rate)
        if not 0 < rate < 1:
            raise ValidationError(f"{source}: win_rate must be between 0 and 1 (exclusive), got {_show(win_rate)}")
        ratio = _positive(source, "win_loss_ratio", win_loss_ratio)
        kelly = (rate * ratio - (1 - rate)) / ratio
        quantity = balance * max(0.0, kelly) * schema.params["kelly_multiplier"] / price_open
        params = SizingCalculateParams(symbol=symbol, account_balance=balance, price_open=price_open,
                                       method=schema.method, win_rate=rate, win_loss_ratio=ratio)
        return await _finish(schema, quantity, params)

    @classmethod
    async def atr_based(cls, symbol: str, account_balance: float, price_open: float, atr: float,
                        *, sizing_name: str) -> float:
        """Risk risk_percentage % of the balance over atr_multiplier ATRs:
        qty = balance * risk_percentage / 100 / (atr * atr_multiplier) (price_open only for the caps)."""
        source = "PositionSize.atr_based"
        schema = _schema(source, "atr-based", sizing_name)
        symbol, balance, price_open = _common(source, symbol, account_balance, price_open)
        atr_value = _real(source, "atr", atr)
        if atr_value <= 0:
            raise ValidationError(f"{source}: atr must be positive, got {_show(atr)}")
        quantity = balance * schema.params["risk_percentage"] / 100 / (atr_value * schema.params["atr_multiplier"])
        params = SizingCalculateParams(symbol=symbol, account_balance=balance, price_open=price_open,
                                       method=schema.method, atr=atr_value)
        return await _finish(schema, quantity, params)
