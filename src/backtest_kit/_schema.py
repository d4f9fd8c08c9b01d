"""Dataclasses of every add_* schema; constructing one validates and normalises it (ValidationError)."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ._config import is_real
from ._time import FRAME_INTERVALS, STRATEGY_INTERVALS, interval_ms, iso, to_datetime, to_ms
from .errors import ValidationError

CALLBACK_NAMES: Mapping[str, frozenset[str]] = {
    "strategy": frozenset({
        "on_open", "on_close", "on_schedule", "on_cancel", "on_tick", "on_idle", "on_active",
        "on_write", "on_partial_profit", "on_partial_loss",
    }),
    "exchange": frozenset({"on_candle_data"}),
    "frame": frozenset({"on_timeframe"}),
    "walker": frozenset({"on_strategy_start", "on_strategy_complete", "on_strategy_error", "on_complete"}),
    "risk": frozenset({"on_rejected", "on_allowed"}),
    "sizing": frozenset({"on_calculate"}),
}

WALKER_METRICS = (
    "total_signals", "win_count", "loss_count", "win_rate", "avg_pnl", "total_pnl", "std_dev",
    "sharpe_ratio", "annualized_sharpe_ratio", "certainty_ratio", "expected_yearly_returns",
    "max_drawdown", "profit_factor", "avg_duration_minutes", "ambiguous_exit_count", "error_count",
    "final_equity", "total_return_pct", "cagr_pct", "max_drawdown_pct", "max_drawdown_duration_days",
    "volatility_ann_pct", "sharpe", "sortino", "calmar", "exposure_pct",
)

SIZING_METHODS = ("fixed-percentage", "kelly-criterion", "atr-based")
_SIZING_CAPS = ("max_position_percentage", "min_position_size", "max_position_size")
# Per method: its own parameters with defaults (None = required).
_SIZING_PARAMS: Mapping[str, Mapping[str, float | None]] = {
    "fixed-percentage": {"risk_percentage": None},
    "kelly-criterion": {"kelly_multiplier": 0.25},
    "atr-based": {"risk_percentage": None, "atr_multiplier": 2},
}


def callback(callbacks: Any, name: str) -> Callable[..., Any] | None:
    """The callback `name` of a callbacks dict or object, or None when absent or not callable."""
    if callbacks is None:
        return None
    member = callbacks.get(name) if isinstance(callbacks, Mapping) else getattr(callbacks, name, None)
    return member if callable(member) else None


def default_format(symbol: str, value: float) -> str:
    """Default format_price / format_quantity: plain str(value)."""
    return str(value)


def _show(value: Any, typed: bool) -> str:
    """Short text of a rejected value, with its type unless it is a str of the expected type (or None)."""
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return text if value is None or (isinstance(value, str) and not typed) else f"{text} ({type(value).__name__})"


_UNSHOWN = object()


def _fail(call: str, fld: str, rule: str, value: Any = _UNSHOWN, typed: bool = False) -> ValidationError:
    """The one error shape: call, field, rule, offending value (typed: a str was the wrong type)."""
    got = "" if value is _UNSHOWN else f", got {_show(value, typed)}"
    return ValidationError(f"{call}: field '{fld}' {rule}{got}")


def _name(call: str, fld: str, value: Any) -> str:
    """A required non-empty str."""
    if not isinstance(value, str) or not value:
        raise _fail(call, fld, "must be a non-empty str", value)
    return value


def _opt_name(call: str, fld: str, value: Any) -> str | None:
    """A non-empty str or None."""
    return None if value is None else _name(call, fld, value)


def _note(call: str, value: Any) -> str | None:
    """note: a str or None."""
    if value is not None and not isinstance(value, str):
        raise _fail(call, "note", "must be a str or None", value)
    return value


def _func(call: str, fld: str, value: Any, required: bool = True) -> Any:
    """A callable (or None when not required)."""
    if value is None and not required:
        return None
    if not callable(value):
        raise _fail(call, fld, "must be callable" if required else "must be callable or None", value, True)
    return value


def _callable_as(call: str, fld: str, fn: Any, args: tuple[Any, ...], shape: str) -> None:
    """Refuse a function that cannot take `args` positionally (a callable without a readable
    signature, such as some builtins, is accepted as it is)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError as e:
        raise _fail(call, fld, f"must be callable as {shape} ({e})", fn, True) from None


def _interval(call: str, value: Any, allowed: tuple[str, ...]) -> str:
    """An interval from the kind's list."""
    if value not in allowed or not isinstance(value, str):
        raise _fail(call, "interval", f"must be one of {', '.join(allowed)}", value)
    return value


def _callbacks(call: str, kind: str, value: Any) -> Any:
    """Check a callbacks dict (known keys, callable values) or object (known members callable)."""
    if value is None:
        return None
    known = CALLBACK_NAMES[kind]
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in known]
        if unknown:
            raise _fail(call, "callbacks", f"has unknown key(s) {', '.join(map(repr, unknown))}; "
                                            f"known: {', '.join(sorted(known))}")
        members = dict(value)
    else:
        members = {k: getattr(value, k, None) for k in known}
    for k, member in members.items():
        if member is not None and not callable(member):
            raise _fail(call, f"callbacks.{k}", "must be callable", member, True)
    return value


def _number(call: str, fld: str, value: Any, rule: str, ok: Callable[[float], bool]) -> float:
    """A finite real number (not bool) satisfying ok."""
    if not is_real(value) or not math.isfinite(value) or not ok(value):
        raise _fail(call, fld, f"must be a finite number {rule}", value, True)
    return value if type(value) in (int, float) else float(value)


DEFAULT_WARMUP_MINUTES = 1440  # a day of 1m candles before the frame for get_signals' indicators
MAX_WARMUP_MINUTES = 366 * 1440
MAX_FRAMES = 10_000_000  # 19 years of 1m frames: an int64 array of 80 MB
MAX_DATE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def frame_count(start_ms: int, end_ms: int, interval: str) -> int:
    """How many timeframes start..end (inclusive) holds at `interval`."""
    return 0 if end_ms < start_ms else (end_ms - start_ms) // interval_ms(interval) + 1


def _when(ms: int) -> str:
    return iso(ms) if 0 <= ms <= MAX_DATE_MS else f"{ms} ms"


def check_frame_count(start_ms: int, end_ms: int, interval: str, where: str) -> None:
    """ValidationError naming the limit when a frame would hold more than MAX_FRAMES timeframes."""
    n = frame_count(start_ms, end_ms, interval)
    if n > MAX_FRAMES:
        raise ValidationError(
            f"{where}: {_when(start_ms)} .. {_when(end_ms)} at {interval} holds {n:,} timeframes; the limit is "
            f"{MAX_FRAMES:,} timeframes per frame — use a longer interval or a shorter period")


def _date(call: str, fld: str, value: Any) -> datetime:
    """A datetime (naive = UTC), a date (midnight UTC) or epoch ms -> aware UTC datetime, from
    1970-01-01 to 9999-12-31."""
    rule = "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
    try:
        if isinstance(value, datetime):
            aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
            result = aware.astimezone(UTC)
        elif isinstance(value, date):
            result = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if not 0 <= int(value) <= MAX_DATE_MS:
                raise _fail(call, fld, rule + " (as epoch milliseconds)", value, True)
            result = to_datetime(int(value))
        else:
            raise _fail(call, fld, "must be a datetime or int epoch milliseconds", value, True)
        ms = to_ms(result)
    except (OverflowError, ValueError, OSError) as e:
        if isinstance(e, ValidationError):
            raise
        raise _fail(call, fld, rule, value, True) from None
    if not 0 <= ms <= MAX_DATE_MS:
        raise _fail(call, fld, rule, value, True)
    return result


def _unique_names(call: str, fld: str, value: Any, non_empty: bool = False) -> tuple[str, ...]:
    """A list/tuple of distinct non-empty str -> tuple."""
    if not isinstance(value, (list, tuple)):
        raise _fail(call, fld, "must be a list or tuple of str", value, True)
    for item in value:
        if not isinstance(item, str) or not item:
            raise _fail(call, fld, "must contain only non-empty str", item)
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if duplicates:
        raise _fail(call, fld, f"has duplicate(s) {', '.join(map(repr, duplicates))}")
    if non_empty and not value:
        raise _fail(call, fld, "must not be empty")
    return tuple(value)


@dataclass
class ExchangeSchema:
    """An exchange: async get_candles(symbol, interval, since, limit) plus price/quantity formatting."""

    exchange_name: str
    get_candles: Callable[..., Any]
    format_price: Callable[..., Any] | None = None
    format_quantity: Callable[..., Any] | None = None
    callbacks: Any = None
    note: str | None = None
    store: Any = None  # a CandleStore in front of get_candles (backtests)
    resolve_symbol: Callable[[str], str] | None = None  # the venue's one name of a market ("BTCUSDT" -> "BTC/USDT")

    def __post_init__(self) -> None:
        call = f"add_exchange(exchange_name={self.exchange_name!r})"
        _name(call, "exchange_name", self.exchange_name)
        _func(call, "get_candles", self.get_candles)
        # Filled with the plain-str default so the engine never branches on None.
        self.format_price = _func(call, "format_price", self.format_price, False) or default_format
        self.format_quantity = _func(call, "format_quantity", self.format_quantity, False) or default_format
        _callbacks(call, "exchange", self.callbacks)
        _note(call, self.note)
        if self.store is not None and not all(callable(getattr(self.store, m, None))
                                              for m in ("read", "write", "missing", "coverage", "data_end")):
            raise _fail(call, "store", "must be a bk.CandleStore or None", self.store, True)
        _func(call, "resolve_symbol", self.resolve_symbol, False)


@dataclass
class FrameSchema:
    """A backtest period: start_date..end_date (inclusive, aware UTC) stepped by interval."""

    frame_name: str
    interval: str
    start_date: datetime
    end_date: datetime
    callbacks: Any = None
    note: str | None = None
    start_ms: int = field(init=False)
    end_ms: int = field(init=False)

    def __post_init__(self) -> None:
        call = f"add_frame(frame_name={self.frame_name!r})"
        _name(call, "frame_name", self.frame_name)
        _interval(call, self.interval, FRAME_INTERVALS)
        self.start_date = _date(call, "start_date", self.start_date)
        self.end_date = _date(call, "end_date", self.end_date)
        self.start_ms, self.end_ms = to_ms(self.start_date), to_ms(self.end_date)
        if self.start_ms > self.end_ms:
            raise ValidationError(f"{call}: field 'start_date' {iso(self.start_ms)} is after "
                                  f"field 'end_date' {iso(self.end_ms)}")
        check_frame_count(self.start_ms, self.end_ms, self.interval, call)
        _callbacks(call, "frame", self.callbacks)
        _note(call, self.note)


@dataclass
class StrategySchema:
    """A strategy: get_signal(symbol, when) called at most once per interval bucket, or
    get_signals(candles) (vectorised) whose per-1m-bar arrays are read at the same moments."""

    strategy_name: str
    interval: str
    get_signal: Callable[..., Any] | None
    callbacks: Any = None
    risk_name: str | None = None
    risk_list: tuple[str, ...] = ()
    note: str | None = None
    sizing_name: str | None = None  # sizes each trade from the account's equity; None: all of it
    get_signals: Callable[..., Any] | None = None
    warmup_minutes: int = DEFAULT_WARMUP_MINUTES  # 1m history before a frame that get_signals sees

    def __post_init__(self) -> None:
        call = f"add_strategy(strategy_name={self.strategy_name!r})"
        _name(call, "strategy_name", self.strategy_name)
        _interval(call, self.interval, STRATEGY_INTERVALS)
        if (self.get_signal is None) == (self.get_signals is None):
            given = "neither" if self.get_signal is None else "both"
            raise ValidationError(f"{call}: give exactly one of 'get_signal' (event mode: get_signal(symbol, when)) "
                                  f"or 'get_signals' (vectorised: get_signals(candles)), got {given}")
        if self.get_signal is not None:
            _func(call, "get_signal", self.get_signal)
            _callable_as(call, "get_signal", self.get_signal, ("BTCUSDT", datetime(2024, 1, 1, tzinfo=UTC)),
                         "get_signal(symbol, when)")
        else:
            _func(call, "get_signals", self.get_signals)
            _callable_as(call, "get_signals", self.get_signals, (None,), "get_signals(candles)")
        if isinstance(self.warmup_minutes, bool) or not isinstance(self.warmup_minutes, numbers.Integral) \
                or not 0 <= int(self.warmup_minutes) <= MAX_WARMUP_MINUTES:
            raise _fail(call, "warmup_minutes", f"must be an int from 0 to {MAX_WARMUP_MINUTES}",
                        self.warmup_minutes, True)
        self.warmup_minutes = int(self.warmup_minutes)
        _callbacks(call, "strategy", self.callbacks)
        _opt_name(call, "risk_name", self.risk_name)
        self.risk_list = _unique_names(call, "risk_list", () if self.risk_list is None else self.risk_list)
        _note(call, self.note)
        _opt_name(call, "sizing_name", self.sizing_name)

    @property
    def risk_names(self) -> tuple[str, ...]:
        """risk_name then risk_list, without repeats: every risk that must allow a signal."""
        names = ((self.risk_name,) if self.risk_name else ()) + self.risk_list
        return tuple(dict.fromkeys(names))


@dataclass
class RiskValidation:
    """One risk check: validate(args) raises to reject; note labels the rejection."""

    validate: Callable[..., Any]
    note: str | None = None


@dataclass
class RiskSchema:
    """A risk profile: validations run in order, the first that raises rejects the signal."""

    risk_name: str
    validations: tuple[RiskValidation, ...]
    callbacks: Any = None
    note: str | None = None

    def __post_init__(self) -> None:
        call = f"add_risk(risk_name={self.risk_name!r})"
        _name(call, "risk_name", self.risk_name)
        if not isinstance(self.validations, (list, tuple)):
            raise _fail(call, "validations", "must be a list or tuple", self.validations, True)
        self.validations = tuple(_validation(call, f"validations[{i}]", v) for i, v in enumerate(self.validations))
        _callbacks(call, "risk", self.callbacks)
        _note(call, self.note)


def _validation(call: str, fld: str, value: Any) -> RiskValidation:
    """A function, a {"validate", "note"} dict or an object with .validate -> RiskValidation."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in ("validate", "note")]
        if unknown:
            raise _fail(call, fld, f"has unknown key(s) {', '.join(map(repr, unknown))}; known: note, validate")
        fn, note = value.get("validate"), value.get("note")
    elif callable(value) and not hasattr(value, "validate"):
        fn, note = value, None
    else:
        fn, note = getattr(value, "validate", None), getattr(value, "note", None)
    if not callable(fn):
        raise _fail(call, f"{fld}.validate", "must be callable (give a function, or a dict/object with "
                                             "a callable 'validate')", fn if fn is not None else value, True)
    if note is not None and not isinstance(note, str):
        raise _fail(call, f"{fld}.note", "must be a str or None", note)
    return RiskValidation(fn, note)


@dataclass
class SizingSchema:
    """A position-sizing method with its parameters (params holds every key of the method, defaults filled)."""

    sizing_name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    callbacks: Any = None
    note: str | None = None

    def __post_init__(self) -> None:
        call = f"add_sizing(sizing_name={self.sizing_name!r})"
        _name(call, "sizing_name", self.sizing_name)
        if self.method not in SIZING_METHODS or not isinstance(self.method, str):
            raise _fail(call, "method", f"must be one of {', '.join(SIZING_METHODS)}", self.method)
        if not isinstance(self.params, Mapping):
            raise _fail(call, "params", "must be a dict", self.params, True)
        own = _SIZING_PARAMS[self.method]
        unknown = [k for k in self.params if k not in own and k not in _SIZING_CAPS]
        if unknown:
            raise ValidationError(f"{call}: unknown parameter(s) {', '.join(map(repr, unknown))} for method "
                                  f"{self.method!r}; known: {', '.join([*own, *_SIZING_CAPS])}")
        params: dict[str, Any] = {}
        for key, default in own.items():
            value = self.params.get(key)
            if value is None and default is None:
                raise _fail(call, key, f"is required for method {self.method!r}")
            value = default if value is None else value
            if key == "risk_percentage":
                params[key] = _number(call, key, value, "> 0 and <= 100", lambda x: 0 < x <= 100)
            else:
                params[key] = _number(call, key, value, "> 0", lambda x: x > 0)
        rules: dict[str, tuple[str, Callable[[float], bool]]] = {
            "max_position_percentage": ("> 0 and <= 100", lambda x: 0 < x <= 100),
            "min_position_size": (">= 0", lambda x: x >= 0),
            "max_position_size": ("> 0", lambda x: x > 0),
        }
        for key, (rule, ok) in rules.items():
            value = self.params.get(key)
            params[key] = None if value is None else _number(call, key, value, rule, ok)
        low, high = params["min_position_size"], params["max_position_size"]
        if low is not None and high is not None and low > high:
            raise ValidationError(f"{call}: field 'min_position_size' ({low!r}) must be <= "
                                  f"field 'max_position_size' ({high!r})")
        self.params = params
        _callbacks(call, "sizing", self.callbacks)
        _note(call, self.note)


@dataclass
class WalkerSchema:
    """A walker: backtest each strategy on one exchange and frame, rank them by metric (maximised)."""

    walker_name: str
    exchange_name: str
    frame_name: str
    strategies: tuple[str, ...]
    metric: str = "sharpe_ratio"
    callbacks: Any = None
    note: str | None = None
    executor: str = "sequential"

    def __post_init__(self) -> None:
        call = f"add_walker(walker_name={self.walker_name!r})"
        _executor(call, self.executor)
        _name(call, "walker_name", self.walker_name)
        _name(call, "exchange_name", self.exchange_name)
        _name(call, "frame_name", self.frame_name)
        self.strategies = _unique_names(call, "strategies", self.strategies, non_empty=True)
        if self.metric not in WALKER_METRICS or not isinstance(self.metric, str):
            raise _fail(call, "metric", f"must be one of {', '.join(WALKER_METRICS)}", self.metric)
        _callbacks(call, "walker", self.callbacks)
        _note(call, self.note)


EXECUTORS = ("sequential", "process", "ray")
# Sweeps minimise these (a smaller drawdown, spread or error count is better) and maximise the rest.
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_pct", "max_drawdown_duration_days", "std_dev",
                             "volatility_ann_pct", "error_count", "ambiguous_exit_count", "loss_count"})
SEARCHES = ("grid", "optuna")
_DURATION_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def _choice(call: str, fld: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(call, fld, f"must be one of {', '.join(map(repr, allowed))}", value)
    return value


def score(metric: str, value: float | None) -> float | None:
    """Higher is better: the metric, or its negative for drawdowns, spreads and error counts."""
    return None if value is None else (-value if metric in LOWER_IS_BETTER else value)


def _executor(call: str, value: Any) -> str:
    kind = _choice(call, "executor", value, EXECUTORS)
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValidationError(f"{call}: executor='ray' needs Ray: pip install 'backtest-kit[ray]'") from None
    return kind


def _metric(call: str, value: Any) -> str:
    if not isinstance(value, str) or value not in WALKER_METRICS:
        raise _fail(call, "metric", f"must be one of {', '.join(WALKER_METRICS)}", value)
    return value


def duration_ms(call: str, fld: str, value: Any) -> int:
    """A duration: "90d", "12h", "30m", "2w", a timedelta, or milliseconds (a positive int)."""
    from datetime import timedelta

    if isinstance(value, timedelta):
        ms = int(value.total_seconds() * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str) and value[:-1].isdigit() and value[-1:] in _DURATION_UNITS:
        ms = int(value[:-1]) * _DURATION_UNITS[value[-1]]
    else:
        raise _fail(call, fld, "must be a duration such as '90d', '12h', '30m' or '2w' (or a timedelta)", value)
    if ms <= 0 or ms % 60_000:
        raise _fail(call, fld, "must be a positive whole number of minutes", value)
    return ms


@dataclass(slots=True)
class SweepSchema:
    """A parameter sweep: factory(**params) -> get_signal, backtested per point of the space."""

    sweep_name: str
    factory: Callable[..., Any]
    space: dict[str, Any]
    exchange_name: str
    frame_name: str
    interval: str
    metric: str = "sharpe_ratio"
    search: str = "grid"
    trials: int | None = None
    storage: str | None = None
    executor: str = "sequential"

    def __post_init__(self) -> None:
        from ._space import check_space

        call = f"add_sweep(sweep_name={self.sweep_name!r})"
        _name(call, "sweep_name", self.sweep_name)
        _func(call, "factory", self.factory)
        _name(call, "exchange_name", self.exchange_name)
        _name(call, "frame_name", self.frame_name)
        _interval(call, self.interval, STRATEGY_INTERVALS)
        _metric(call, self.metric)
        _choice(call, "search", self.search, SEARCHES)
        _executor(call, self.executor)
        if self.search == "optuna":
            try:
                import optuna  # noqa: F401
            except ImportError:
                raise ValidationError(f"{call}: search='optuna' needs Optuna: pip install 'backtest-kit[optuna]'") \
                    from None
            if not isinstance(self.trials, int) or isinstance(self.trials, bool) or self.trials < 1:
                raise _fail(call, "trials", "must be a positive int with search='optuna'", self.trials)
        elif self.trials is not None:
            raise _fail(call, "trials", "applies to search='optuna' only (a grid runs every point)", self.trials)
        if self.storage is not None:
            if self.search != "optuna":
                raise _fail(call, "storage", "applies to search='optuna' only", self.storage)
            if not isinstance(self.storage, str) or not self.storage:
                raise _fail(call, "storage", "must be an Optuna storage URL or a journal file path", self.storage)
        self.space = check_space(call, self.space, self.search)


@dataclass(slots=True)
class WalkForwardSchema:
    """Walk-forward validation of a sweep: optimise on each train window, trade the winner on the next test window."""

    walk_name: str
    sweep_name: str
    train: Any
    test: Any
    step: Any = None
    anchored: bool = False
    train_ms: int = field(init=False)
    test_ms: int = field(init=False)
    step_ms: int = field(init=False)

    def __post_init__(self) -> None:
        call = f"add_walk_forward(walk_name={self.walk_name!r})"
        _name(call, "walk_name", self.walk_name)
        _name(call, "sweep_name", self.sweep_name)
        self.train_ms = duration_ms(call, "train", self.train)
        self.test_ms = duration_ms(call, "test", self.test)
        self.step_ms = self.test_ms if self.step is None else duration_ms(call, "step", self.step)
        if self.step_ms < self.test_ms:
            raise _fail(call, "step", "must be at least test, so out-of-sample windows never overlap "
                        "(a trade counted twice)", self.step)
        if not isinstance(self.anchored, bool):
            raise _fail(call, "anchored", "must be a bool", self.anchored)
