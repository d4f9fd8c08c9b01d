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
    SweepSchema,
    WalkerSchema,
    WalkForwardSchema,
)
from .errors import ValidationError

T = TypeVar("T")

_exchanges: dict[str, ExchangeSchema] = _state.register("exchanges", {})
_frames: dict[str, FrameSchema] = _state.register("frames", {})
_strategies: dict[str, StrategySchema] = _state.register("strategies", {})
_risks: dict[str, RiskSchema] = _state.register("risks", {})
_sizings: dict[str, SizingSchema] = _state.register("sizings", {})
_walkers: dict[str, WalkerSchema] = _state.register("walkers", {})
_sweeps: dict[str, SweepSchema] = _state.register("sweeps", {})
_walks: dict[str, WalkForwardSchema] = _state.register("walk_forwards", {})
_aliases: dict[str, str] = _state.register("symbol_aliases", {})  # "BTCUSDT" -> "BTC/USDT" (resolved once)

_PLURAL = {"exchange": "exchanges", "frame": "frames", "strategy": "strategies",
           "risk": "risks", "sizing": "sizings", "walker": "walkers",
           "sweep": "sweeps", "walk_forward": "walk-forwards"}


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
               metric: str = "sharpe_ratio", callbacks: Any = None, note: str | None = None,
               executor: str = "sequential") -> None:
    """Register a walker comparing strategies on one exchange and frame; `executor` runs them one
    after another ("sequential"), on every core ("process") or on Ray ("ray")."""
    _store(_walkers, "walker", walker_name, lambda: WalkerSchema(
        walker_name, exchange_name, frame_name, strategies, metric, callbacks, note, executor))  # type: ignore[arg-type]


def add_sweep(sweep_name: str, factory: Callable[..., Any], space: Any, *, exchange_name: str, frame_name: str,
              interval: str, metric: str = "sharpe_ratio", search: str = "grid", trials: int | None = None,
              storage: str | None = None, executor: str = "sequential") -> None:
    """Register a parameter sweep: `factory(**params)` returns a get_signal; `space` maps each parameter to
    its values (a grid) or to an Optuna distribution / `(low, high)` range (`search="optuna"`, `trials=N`,
    `storage=` an Optuna storage URL or journal file to resume and share the study)."""
    _store(_sweeps, "sweep", sweep_name, lambda: SweepSchema(
        sweep_name, factory, space, exchange_name, frame_name, interval, metric, search, trials, storage, executor))


def add_walk_forward(walk_name: str, sweep_name: str, *, train: Any, test: Any, step: Any = None,
                     anchored: bool = False) -> None:
    """Register a walk-forward over a sweep: train and test windows ("90d", "30d"), moved by `step`
    (default: test); `anchored=True` grows every train window from the frame's start."""
    _store(_walks, "walk_forward", walk_name, lambda: WalkForwardSchema(
        walk_name, sweep_name, train, test, step, anchored))


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


def get_sweep(name: str, source: str | None = None) -> SweepSchema:
    """The sweep registered as name (ValidationError naming source if absent)."""
    return _lookup(_sweeps, "sweep", name, source)


def get_walk_forward(name: str, source: str | None = None) -> WalkForwardSchema:
    """The walk-forward registered as name (ValidationError naming source if absent)."""
    return _lookup(_walks, "walk_forward", name, source)


def validate_sweep_refs(sweep_name: str, source: str | None = None) -> SweepSchema:
    """The sweep, after checking its exchange and frame are registered."""
    sweep = get_sweep(sweep_name, source)
    get_exchange(sweep.exchange_name, source)
    get_frame(sweep.frame_name, source)
    return sweep


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



def schemas_for(exchange_name: str, frame_name: str, strategy_names: Sequence[str] = (),
                sweep_name: str | None = None) -> dict[str, dict[str, Any]]:
    """The schemas a run of these names needs (with their risks and sizings), to register elsewhere."""
    strategies = {n: get_strategy(n) for n in strategy_names}
    risks = {r: get_risk(r) for s in strategies.values() for r in s.risk_names}
    sizings = {s.sizing_name: get_sizing(s.sizing_name) for s in strategies.values() if s.sizing_name}
    return {"exchange": {exchange_name: get_exchange(exchange_name)}, "frame": {frame_name: get_frame(frame_name)},
            "strategy": strategies, "risk": risks, "sizing": sizings,
            "sweep": {sweep_name: get_sweep(sweep_name)} if sweep_name else {}, "alias": dict(_aliases)}


def adopt_schemas(schemas: dict[str, dict[str, Any]]) -> None:
    """Register schemas_for() output in this process (a worker), replacing same-named ones."""
    tables: dict[str, dict[str, Any]] = {"exchange": _exchanges, "frame": _frames, "strategy": _strategies,
                                         "risk": _risks, "sizing": _sizings, "sweep": _sweeps, "alias": _aliases}
    for kind, items in schemas.items():
        tables[kind].update(items)
