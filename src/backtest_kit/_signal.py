"""Normalising what get_signal returns, and the signal validation rules."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from dataclasses import fields
from typing import Any

from ._config import cfg
from .errors import ValidationError
from .events import Signal, SignalRow

_SIGNAL_FIELDS = tuple(f.name for f in fields(Signal))
_REQUIRED = ("position", "price_take_profit", "price_stop_loss", "minute_estimated_time")


# --- normalisation -----------------------------------------------------------------------

def _plain_number(v: Any) -> Any:
    """numpy / other numeric scalars -> int or float, so validation treats them like Python numbers."""
    if isinstance(v, bool) or type(v) in (int, float):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return v


_NUMERIC_FIELDS = ("price_take_profit", "price_stop_loss", "minute_estimated_time", "price_open")


def _normalised(sig: Signal) -> Signal:
    changes = {}
    for name in _NUMERIC_FIELDS:
        v = getattr(sig, name)
        p = _plain_number(v)
        if p is not v:
            changes[name] = p
    return dataclasses.replace(sig, **changes) if changes else sig


def to_signal(value: Any) -> Signal:
    """Normalise what get_signal returned (Signal or dict) to a Signal; errors name the field."""
    if isinstance(value, Signal):
        return _normalised(value)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _SIGNAL_FIELDS]
        missing = [k for k in _REQUIRED if value.get(k) is None]
        problems = []
        if unknown:
            problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                            f"expected {', '.join(_SIGNAL_FIELDS)}")
        if missing:
            problems.append(f"missing required field(s) {', '.join(map(repr, missing))}")
        if problems:
            raise ValidationError(f"Invalid signal for {value.get('position')} position:\n"
                                  + "\n".join(problems))
        return _normalised(Signal(**value))
    raise ValidationError(f"Invalid signal: get_signal must return a bk.Signal, a dict or None, "
                          f"got {type(value).__name__}")


_MD_RULES = [
    (re.compile(r"```.*?```", re.S), ""),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),
    (re.compile(r"^\s*>\s?", re.M), ""),
    (re.compile(r"^\s*([-*_]\s*){3,}$", re.M), ""),
    (re.compile(r"^\s*(?:[-*+]|\d+\.)\s+", re.M), "• "),
    (re.compile(r"(\*\*|__|~~)(.*?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])[*_](?!\s)(.+?)(?<!\s)[*_](?![\w*])"), r"\1"),
    (re.compile(r"<[^>]+>"), ""),
]


# Every rule above needs one of these (a list item's number needs "<digit>." and a space): a
# note without any has nothing to strip.
_MD_SIGNS = re.compile(r"[`\[!#>*_~<+-]|\d\.\s")


def plain_note(note: Any) -> str:
    """Markdown-stripped single-line text of a note ('' for None), as the reference does."""
    if not note:
        return ""
    text = str(note)
    if _MD_SIGNS.search(text):
        for pattern, repl in _MD_RULES:
            text = pattern.sub(repl, text)
    return " ".join(text.split())


def new_id() -> str:
    """A random (version 4) UUID's text, as str(uuid.uuid4()) builds it from 16 random bytes."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- validation --------------------------------------------------------------------------

def num(x: Any) -> str:
    """A number as JavaScript prints it (integral floats without '.0')."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, float)):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
            return str(int(x))
        return repr(x) if isinstance(x, float) else str(x)
    return repr(x)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def signal_errors(row: SignalRow, current_price: float) -> list[str]:
    """Every rule the row breaks, in the reference's order; empty when the signal is valid."""
    c = cfg
    errors: list[str] = []
    pos = row.position
    if pos not in ("long", "short"):
        errors.append(f"position must be 'long' or 'short', got {row.position!r}")
    price_ok = _finite(current_price)  # each value judged once, the verdict reused below
    if not price_ok:
        errors.append(f"current_price must be a finite number, got {num(current_price)}")
    elif current_price <= 0:
        errors.append(f"current_price must be positive, got {num(current_price)}")
    o, tp, sl = row.price_open, row.price_take_profit, row.price_stop_loss
    prices_ok = True
    for name, v in (("price_open", o), ("price_take_profit", tp), ("price_stop_loss", sl)):
        if not _finite(v):
            prices_ok = False
            errors.append(f"{name} must be a finite number, got {num(v)}")
        elif v <= 0:
            errors.append(f"{name} must be positive, got {num(v)}")
    if prices_ok and pos in ("long", "short"):
        long = pos == "long"
        side = "Long" if long else "Short"
        if long:
            if not tp > o:
                errors.append(f"Long: price_take_profit ({num(tp)}) must be > price_open ({num(o)})")
            if not sl < o:
                errors.append(f"Long: price_stop_loss ({num(sl)}) must be < price_open ({num(o)})")
        else:
            if not tp < o:
                errors.append(f"Short: price_take_profit ({num(tp)}) must be < price_open ({num(o)})")
            if not sl > o:
                errors.append(f"Short: price_stop_loss ({num(sl)}) must be > price_open ({num(o)})")
        if not row.is_scheduled and price_ok:
            p = current_price
            if (p <= sl) if long else (p >= sl):
                errors.append(
                    f"{side} immediate: current_price ({num(p)}) {'<=' if long else '>='} "
                    f"price_stop_loss ({num(sl)}). Signal would be immediately closed by stop loss. "
                    "Cannot open position that is already stopped out.")
            if (p >= tp) if long else (p <= tp):
                errors.append(
                    f"{side} immediate: current_price ({num(p)}) {'>=' if long else '<='} "
                    f"price_take_profit ({num(tp)}). Signal would be immediately closed by take "
                    "profit. The profit opportunity has already passed.")
        if row.is_scheduled:
            if (o <= sl) if long else (o >= sl):
                errors.append(
                    f"{side} scheduled: price_open ({num(o)}) {'<=' if long else '>='} "
                    f"price_stop_loss ({num(sl)}). The order would be cancelled at its own fill price.")
            if (o >= tp) if long else (o <= tp):
                errors.append(
                    f"{side} scheduled: price_open ({num(o)}) {'>=' if long else '<='} "
                    f"price_take_profit ({num(tp)}). The position would close at its own fill price.")
        # Same float expression order as the reference so boundary values agree exactly.
        tp_pct = ((tp - o) if long else (o - tp)) / o * 100
        sl_pct = ((o - sl) if long else (sl - o)) / o * 100
        if c.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT and tp_pct < c.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT:
            errors.append(
                f"{side}: TakeProfit too close to priceOpen ({tp_pct:.3f}%). Minimum distance: "
                f"{num(c.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT)}% to cover trading fees. "
                f"Current: TP={num(tp)}, Open={num(o)}")
        if c.CC_MIN_STOPLOSS_DISTANCE_PERCENT and sl_pct < c.CC_MIN_STOPLOSS_DISTANCE_PERCENT:
            errors.append(
                f"{side}: StopLoss too close to priceOpen ({sl_pct:.3f}%). Minimum distance: "
                f"{num(c.CC_MIN_STOPLOSS_DISTANCE_PERCENT)}% to avoid instant stop out on market "
                f"volatility. Current: SL={num(sl)}, Open={num(o)}")
        if c.CC_MAX_STOPLOSS_DISTANCE_PERCENT and sl_pct > c.CC_MAX_STOPLOSS_DISTANCE_PERCENT:
            errors.append(
                f"{side}: StopLoss too far from priceOpen ({sl_pct:.3f}%). Maximum distance: "
                f"{num(c.CC_MAX_STOPLOSS_DISTANCE_PERCENT)}% to protect capital from extreme losses. "
                f"Current: SL={num(sl)}, Open={num(o)}")
    met: object = row.minute_estimated_time  # typed int, but may still be anything get_signal returned
    is_int = isinstance(met, int) and not isinstance(met, bool) or (
        isinstance(met, float) and met.is_integer())
    if not isinstance(met, (int, float)) or isinstance(met, bool):
        errors.append(f"minute_estimated_time must be a positive integer, got {met!r}")
    else:
        if met <= 0:
            errors.append(f"minute_estimated_time must be positive, got {num(met)}")
        if not is_int:
            errors.append(f"minute_estimated_time must be an integer (whole number), got {num(met)}")
        limit = c.CC_MAX_SIGNAL_LIFETIME_MINUTES
        if limit and met > limit:
            errors.append(
                f"minuteEstimatedTime too large ({num(met)} minutes = {met / 60 / 24:.1f} days). "
                f"Maximum: {num(limit)} minutes ({num(limit / 60 / 24)} days) to prevent strategy "
                "deadlock. Eternal signals block risk limits and prevent new trades.")
    return errors


def validation_message(row: SignalRow, errors: list[str]) -> str:
    return f"Invalid signal for {row.position} position:\n" + "\n".join(errors)
