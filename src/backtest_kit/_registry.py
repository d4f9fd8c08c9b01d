"""The one registry of schemas: add_* (validated, atomic), list_*, get_* lookups for the engine, reset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from . import _state
from ._schema import (
    DEFAULT_WARMUP_MINUTES,
    ExchangeSchema,
    FrameSchema,
    RiskSchema,
    SizingSchema,
    StrategySchema,
    WalkerSchema,
)
from .errors import ValidationError

T = TypeVar("T")

_exchanges: dict[str, ExchangeSchema] = _state.register("exchanges", {})
_frames: dict[str, FrameSchema] = _state.register("frames", {})
_strategies: dict[str, StrategySchema] = _state.register("strategies", {})
_risks: dict[str, RiskSchema] = _state.register("risks", {})
_sizings: dict[str, SizingSchema] = _state.register("sizings", {})
_walkers: dict[str, WalkerSchema] = _state.register("walkers", {})
_aliases: dict[str, str] = _state.register("symbol_aliases", {})  # "BTCUSDT" -> "BTC/USDT" (resolved once)

_PLURAL = {"exchange": "exchanges", "frame": "frames", "strategy": "strategies",
           "risk": "risks", "sizing": "sizings", "walker": "walkers"}


def _store(table: dict[str, T], kind: str, name: str, build: Callable[[], T]) -> None:
    """Refuse a taken name, build (validate) the schema, and only then store it (D7: no trace on error)."""
    if isinstance(name, str) and name in table:
        raise ValidationError(f"add_{kind}: {kind} {name!r} is already registered")
    table[name] = build()


def _lookup(table: dict[str, T], kind: str, name: str, source: str | None) -> T:
    """The schema registered under name, or a ValidationError naming kind, name, source and what exists."""
    try:
        return table[name]
    except (KeyError, TypeError):
        where = f" (called from {source})" if source else ""
        known = ", ".join(table) or "none"
        raise ValidationError(f"{kind} {name!r} not found{where}; registered {_PLURAL[kind]}: {known}") from None


def add_exchange(exchange_name: str, get_candles: Callable[..., Any], format_price: Callable[..., Any] | None = None,
                 format_quantity: Callable[..., Any] | None = None, callbacks: Any = None,
                 note: str | None = None, store: Any = None,
                 resolve_symbol: Callable[[str], str] | None = None) -> None:
    """Register an exchange (candle source and formatters). `store`: a bk.CandleStore that backtests read
    first (only missing ranges are fetched, then written back). `resolve_symbol(symbol)`: the venue's one
    name of a market, so two spellings of it are one instance (the ccxt adapter sets it)."""
    _store(_exchanges, "exchange", exchange_name, lambda: ExchangeSchema(
        exchange_name, get_candles, format_price, format_quantity, callbacks, note, store, resolve_symbol))


def add_frame(frame_name: str, interval: str, start_date: datetime | int, end_date: datetime | int,
              callbacks: Any = None, note: str | None = None) -> None:
    """Register a backtest timeframe (dates: datetime, naive = UTC, or epoch ms)."""
    _store(_frames, "frame", frame_name, lambda: FrameSchema(
        frame_name, interval, start_date, end_date, callbacks, note))  # type: ignore[arg-type]


def add_strategy(strategy_name: str, interval: str, get_signal: Callable[..., Any] | None = None,
                 get_signals: Callable[..., Any] | None = None, callbacks: Any = None,
                 risk_name: str | None = None, risk_list: Sequence[str] | None = None,
                 note: str | None = None, sizing_name: str | None = None,
                 warmup_minutes: int = DEFAULT_WARMUP_MINUTES) -> None:
    """Register a strategy: exactly one of `get_signal(symbol, when)` or the vectorised
    `get_signals(candles)` (per-1m-bar arrays; `warmup_minutes` of 1m history before a frame
    feed its indicators). `sizing_name` (an add_sizing schema) sizes each trade from equity."""
    _store(_strategies, "strategy", strategy_name, lambda: StrategySchema(
        strategy_name, interval, get_signal, callbacks, risk_name, risk_list, note,  # type: ignore[arg-type]
        sizing_name, get_signals, warmup_minutes))


def add_risk(risk_name: str, validations: Sequence[Any], callbacks: Any = None, note: str | None = None) -> None:
    """Register a risk profile (validations: functions, {"validate", "note"} dicts or objects)."""
    _store(_risks, "risk", risk_name, lambda: RiskSchema(risk_name, validations, callbacks, note))  # type: ignore[arg-type]


def add_sizing(sizing_name: str, method: str, **params: Any) -> None:
    """Register a sizing method; params are the method's parameters plus optional callbacks and note."""
    callbacks, note = params.pop("callbacks", None), params.pop("note", None)
    _store(_sizings, "sizing", sizing_name, lambda: SizingSchema(sizing_name, method, params, callbacks, note))


def add_walker(walker_name: str, exchange_name: str, frame_name: str, strategies: Sequence[str],
               metric: str = "sharpe_ratio", callbacks: Any = None, note: str | None = None) -> None:
    """Register a walker comparing strategies on one exchange and frame."""
    _store(_walkers, "walker", walker_name, lambda: WalkerSchema(
        walker_name, exchange_name, frame_name, strategies, metric, callbacks, note))  # type: ignore[arg-type]


def list_exchanges() -> list[ExchangeSchema]:
    """Registered exchanges in registration order."""
    return list(_exchanges.values())


def list_frames() -> list[FrameSchema]:
    """Registered frames in registration order."""
    return list(_frames.values())


def list_strategies() -> list[StrategySchema]:
    """Registered strategies in registration order."""
    return list(_strategies.values())


def list_risks() -> list[RiskSchema]:
    """Registered risk profiles in registration order."""
    return list(_risks.values())


def list_sizings() -> list[SizingSchema]:
    """Registered sizing methods in registration order."""
    return list(_sizings.values())


def list_walkers() -> list[WalkerSchema]:
    """Registered walkers in registration order."""
    return list(_walkers.values())


def get_exchange(name: str, source: str | None = None) -> ExchangeSchema:
    """The exchange registered as name (ValidationError naming source if absent)."""
    return _lookup(_exchanges, "exchange", name, source)


def get_frame(name: str, source: str | None = None) -> FrameSchema:
    """The frame registered as name (ValidationError naming source if absent)."""
    return _lookup(_frames, "frame", name, source)


def get_strategy(name: str, source: str | None = None) -> StrategySchema:
    """The strategy registered as name (ValidationError naming source if absent)."""
    return _lookup(_strategies, "strategy", name, source)


def get_risk(name: str, source: str | None = None) -> RiskSchema:
    """The risk profile registered as name (ValidationError naming source if absent)."""
    return _lookup(_risks, "risk", name, source)


def get_sizing(name: str, source: str | None = None) -> SizingSchema:
    """The sizing method registered as name (ValidationError naming source if absent)."""
    return _lookup(_sizings, "sizing", name, source)


def get_walker(name: str, source: str | None = None) -> WalkerSchema:
    """The walker registered as name (ValidationError naming source if absent)."""
    return _lookup(_walkers, "walker", name, source)


def canonical_symbol(symbol: str, exchange_name: str | None = None) -> str:
    """The one name of `symbol`: the exchange's resolve_symbol (remembered as an alias, so later calls
    without an exchange, such as get_data, find it), else an alias met before, else `symbol` itself."""
    schema = _exchanges.get(exchange_name) if isinstance(exchange_name, str) else None
    if schema is not None and schema.resolve_symbol is not None and isinstance(symbol, str):
        name = schema.resolve_symbol(symbol)
        if isinstance(name, str) and name and name != symbol:
            _aliases[symbol] = name
            return name
        return symbol
    return _aliases.get(symbol, symbol) if isinstance(symbol, str) else symbol


def validate_symbol(symbol: Any, source: str) -> str:
    """A symbol is a non-empty str ("BTCUSDT"); anything else is refused naming the method."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValidationError(f"{source}: symbol must be a non-empty str such as 'BTCUSDT', got {symbol!r}")
    return symbol


def validate_strategy_refs(strategy_name: str, source: str | None = None) -> StrategySchema:
    """The strategy, after checking it and every risk it names (risk_name, risk_list) are registered."""
    strategy = get_strategy(strategy_name, source)
    for risk_name in strategy.risk_names:
        try:
            get_risk(risk_name, source)
        except ValidationError as error:
            raise ValidationError(f"{error}; referenced by strategy {strategy_name!r}") from None
    if strategy.sizing_name is not None:
        try:
            get_sizing(strategy.sizing_name, source)
        except ValidationError as error:
            raise ValidationError(f"{error}; referenced by strategy {strategy_name!r}") from None
    return strategy


def validate_walker_refs(walker_name: str, source: str | None = None) -> WalkerSchema:
    """The walker, after checking its exchange, frame, strategies and their risks are registered."""
    walker = get_walker(walker_name, source)
    get_exchange(walker.exchange_name, source)
    get_frame(walker.frame_name, source)
    for strategy_name in walker.strategies:
        validate_strategy_refs(strategy_name, source)
    return walker

