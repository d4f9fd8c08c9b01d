"""CC_* configuration: defaults, the live `cfg` object read by the engine, validated atomic set_config."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeGuard

from . import _state
from .errors import ConfigError

DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "CC_SCHEDULE_AWAIT_MINUTES": 120,
    "CC_AVG_PRICE_CANDLES_COUNT": 5,
    "CC_PERCENT_SLIPPAGE": 0.1,
    "CC_PERCENT_FEE": 0.1,
    "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 0.5,
    "CC_MIN_STOPLOSS_DISTANCE_PERCENT": 0.5,
    "CC_MAX_STOPLOSS_DISTANCE_PERCENT": 20,
    "CC_MAX_SIGNAL_LIFETIME_MINUTES": 1440,
    "CC_MAX_SIGNAL_GENERATION_SECONDS": 180,
    "CC_GET_CANDLES_RETRY_COUNT": 3,
    "CC_GET_CANDLES_RETRY_DELAY_MS": 5000,
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR": 1000,
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN": 5,
    "CC_REPORT_SHOW_SIGNAL_NOTE": False,
    "CC_TICK_TTL_MS": 60001,
    "CC_INTRABAR_POLICY": "take_profit",
    "CC_INITIAL_CAPITAL": 10_000,
    "CC_ANNUALIZATION_DAYS": 365,
})

_BOOL_KEYS = frozenset({"CC_REPORT_SHOW_SIGNAL_NOTE"})
# Which level wins when one candle reaches both take-profit and stop-loss.
_CHOICE_KEYS: Mapping[str, tuple[str, ...]] = {"CC_INTRABAR_POLICY": ("take_profit", "stop_loss", "open_distance")}
_INT_KEYS = frozenset({
    "CC_SCHEDULE_AWAIT_MINUTES", "CC_AVG_PRICE_CANDLES_COUNT", "CC_MAX_SIGNAL_LIFETIME_MINUTES",
    "CC_MAX_SIGNAL_GENERATION_SECONDS", "CC_GET_CANDLES_RETRY_COUNT", "CC_GET_CANDLES_RETRY_DELAY_MS",
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR", "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN",
    "CC_TICK_TTL_MS", "CC_ANNUALIZATION_DAYS",
})
# RETRY_COUNT is here too: zero attempts would make every fetch fail (a 1.5.27 defect we fix).
_POSITIVE_KEYS = frozenset({
    "CC_SCHEDULE_AWAIT_MINUTES", "CC_AVG_PRICE_CANDLES_COUNT", "CC_MAX_SIGNAL_GENERATION_SECONDS",
    "CC_GET_CANDLES_RETRY_COUNT", "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR",
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN", "CC_TICK_TTL_MS", "CC_INITIAL_CAPITAL", "CC_ANNUALIZATION_DAYS",
})


# Largest accepted values: beyond them a key means nothing sane and the engine's arithmetic
# (minutes -> ms, timeouts, windows of candles) would overflow or allocate without bound.
_YEARS_10_MIN = 10 * 525_600
_MAX: Mapping[str, float] = {
    "CC_SCHEDULE_AWAIT_MINUTES": _YEARS_10_MIN,
    "CC_AVG_PRICE_CANDLES_COUNT": 100_000,
    "CC_PERCENT_SLIPPAGE": 100,
    "CC_PERCENT_FEE": 100,
    "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 1_000_000,
    "CC_MIN_STOPLOSS_DISTANCE_PERCENT": 1_000_000,
    "CC_MAX_STOPLOSS_DISTANCE_PERCENT": 1_000_000,
    "CC_MAX_SIGNAL_LIFETIME_MINUTES": _YEARS_10_MIN,
    "CC_MAX_SIGNAL_GENERATION_SECONDS": 365 * 86_400,
    "CC_GET_CANDLES_RETRY_COUNT": 1_000,
    "CC_GET_CANDLES_RETRY_DELAY_MS": 3_600_000,
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR": 10**15,
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN": 100_000,
    "CC_TICK_TTL_MS": 7 * 86_400_000,
    "CC_INITIAL_CAPITAL": 1e15,
    "CC_ANNUALIZATION_DAYS": 366,
}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


class Config:
    """The current configuration; the engine reads `cfg.CC_*` attributes directly in hot loops."""

    __slots__ = tuple(DEFAULTS)

    CC_SCHEDULE_AWAIT_MINUTES: int
    CC_AVG_PRICE_CANDLES_COUNT: int
    CC_PERCENT_SLIPPAGE: float
    CC_PERCENT_FEE: float
    CC_MIN_TAKEPROFIT_DISTANCE_PERCENT: float
    CC_MIN_STOPLOSS_DISTANCE_PERCENT: float
    CC_MAX_STOPLOSS_DISTANCE_PERCENT: float
    CC_MAX_SIGNAL_LIFETIME_MINUTES: int
    CC_MAX_SIGNAL_GENERATION_SECONDS: int
    CC_GET_CANDLES_RETRY_COUNT: int
    CC_GET_CANDLES_RETRY_DELAY_MS: int
    CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR: int
    CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN: int
    CC_REPORT_SHOW_SIGNAL_NOTE: bool
    CC_TICK_TTL_MS: int
    CC_INTRABAR_POLICY: str
    CC_INITIAL_CAPITAL: float
    CC_ANNUALIZATION_DAYS: int

    def __init__(self) -> None:
        self.apply(DEFAULTS)

    def apply(self, values: Mapping[str, Any]) -> None:
        """Write validated values (no await in between, so no reader sees a half-applied update)."""
        for key, value in values.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        """A copy of the current values."""
        return {key: getattr(self, key) for key in DEFAULTS}

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def clear(self) -> None:
        """Every key back to its default."""
        self.apply(DEFAULTS)

    def __len__(self) -> int:
        """How many keys differ from their defaults."""
        return sum(1 for k, v in DEFAULTS.items() if getattr(self, k) != v)


cfg = _state.register("config_overrides", Config())


def is_real(value: object) -> TypeGuard[float]:
    """A real number other than bool: int, float, numpy scalars, Fraction, ... They are typed as
    float, which is how the engine uses them (compared, and converted with int() / float())."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _check(key: str, value: Any) -> tuple[Any, str | None]:
    """Return (normalised value, None) or (None, error text) for one override."""
    if key in _CHOICE_KEYS:
        if isinstance(value, str) and value in _CHOICE_KEYS[key]:
            return value, None
        return None, f"{key} must be one of {', '.join(map(repr, _CHOICE_KEYS[key]))}, got {value!r}"
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value, None
        return None, f"{key} must be a bool, got {value!r} ({type(value).__name__})"
    if not is_real(value):
        return None, f"{key} must be a number, got {_short(value)} ({type(value).__name__})"
    limit = _MAX[key]
    try:
        finite = isinstance(value, numbers.Integral) or math.isfinite(value)
        too_big = finite and abs(value) > limit
    except (OverflowError, ValueError, TypeError):  # a Fraction or custom Real beyond float range
        finite, too_big = True, True
    if not finite:
        return None, f"{key} must be finite, got {_short(value)}"
    if too_big:
        return None, f"{key} must be at most {limit:,}, got {_short(value)}"
    if key == "CC_PERCENT_SLIPPAGE" and value >= 100:  # a short would open at price * 0
        return None, f"{key} must be < 100, got {_short(value)}"
    if key in _INT_KEYS:
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif float(value).is_integer():
            value = int(value)
        else:
            return None, f"{key} must be an integer, got {value!r}"
    else:
        value = value if type(value) in (int, float) else float(value)
    if key in _POSITIVE_KEYS and value <= 0:
        return None, f"{key} must be > 0, got {value!r}"
    if value < 0:
        return None, f"{key} must be >= 0, got {value!r}"
    return value, None


def set_config(config: Mapping[str, Any] | None = None, /, **overrides: Any) -> None:
    """Validate and apply overrides (a mapping and/or keywords); on any error raise ConfigError and change nothing."""
    merged_overrides = {**(config or {}), **overrides}
    errors: list[str] = []
    accepted: dict[str, Any] = {}
    for key, value in merged_overrides.items():
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            errors.append(f"unknown config key {key!r}{hint}; valid keys: {', '.join(DEFAULTS)}")
            continue
        normalised, error = _check(key, value)
        if error:
            errors.append(error)
        else:
            accepted[key] = normalised
    if not errors:
        result = {**cfg.as_dict(), **accepted}
        min_sl = result["CC_MIN_STOPLOSS_DISTANCE_PERCENT"]
        max_sl = result["CC_MAX_STOPLOSS_DISTANCE_PERCENT"]
        if min_sl and max_sl and min_sl >= max_sl:
            errors.append(
                f"CC_MIN_STOPLOSS_DISTANCE_PERCENT ({min_sl!r}) must be < "
                f"CC_MAX_STOPLOSS_DISTANCE_PERCENT ({max_sl!r}) when both are non-zero"
            )
    if errors:
        lines = "\n".join(f"  {i}. {e}" for i, e in enumerate(errors, 1))
        raise ConfigError(f"set_config failed, nothing changed:\n{lines}")
    cfg.apply(accepted)


def get_config() -> dict[str, Any]:
    """A copy of the current configuration."""
    return cfg.as_dict()


def get_default_config() -> dict[str, Any]:
    """A copy of the default configuration."""
    return dict(DEFAULTS)

