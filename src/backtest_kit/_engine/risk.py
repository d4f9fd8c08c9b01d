"""Risk profiles: validations over the pending signal and the portfolio's active positions.

One book of active positions per (risk name, mode), shared by every strategy and symbol that
uses the profile; positions are keyed "strategy:symbol", added on open, removed on close.
"""

from __future__ import annotations

from dataclasses import replace

from .. import _registry as registry
from .. import _state
from .._exchange import maybe_await
from .._persist import PersistBackend, write_record
from .._schema import RiskSchema
from ..events import ActivePosition, RiskCheckArgs, RiskEvent, SignalRow


class RiskBook:
    """Active positions of one risk profile in one mode.

    Live: the positions open now. Backtest: every position of the profile's runs with its
    open and close time, so a check at simulated time t sees what was open at t, whichever
    strategy or symbol ran first (positions of a run still in progress count until closed).
    """

    def __init__(self, schema: RiskSchema, backtest: bool):
        self.schema = schema
        self.backtest = backtest
        self.positions: dict[str, ActivePosition] = {}
        self.history: list[ActivePosition] = []  # backtest only
        self.store: PersistBackend | None = None  # live: a backend to write the positions to

    def add(self, strategy_name: str, symbol: str, signal: SignalRow | None, when: int) -> None:
        position = ActivePosition(strategy_name, symbol, signal, when)
        self.positions[f"{strategy_name}:{symbol}"] = position
        if self.backtest:
            self.history.append(position)
        self._save()

    def remove(self, strategy_name: str, symbol: str, when: int | None = None) -> None:
        position = self.positions.pop(f"{strategy_name}:{symbol}", None)
        if position is not None:
            if self.backtest:  # the history keeps when it closed, for checks at earlier times
                k = next(i for i in range(len(self.history) - 1, -1, -1) if self.history[i] is position)
                self.history[k] = replace(position, close_timestamp=when)
            self._save()

    def forget(self, strategy_name: str, symbol: str) -> None:
        """A new backtest run of (strategy, symbol) replaces its earlier positions."""
        self.positions.pop(f"{strategy_name}:{symbol}", None)
        self.history = [p for p in self.history if (p.strategy_name, p.symbol) != (strategy_name, symbol)]

    def active_at(self, when: int) -> list[ActivePosition]:
        if not self.backtest:
            return list(self.positions.values())
        return [p for p in self.history if p.open_timestamp <= when
                and (p.close_timestamp is None or when < p.close_timestamp)]

    def _save(self) -> None:
        if self.store is not None:
            write_record(self.store, "risk", self.schema.risk_name, [
                {"strategy_name": p.strategy_name, "symbol": p.symbol, "open_timestamp": p.open_timestamp,
                 "signal": p.signal.to_dict() if p.signal is not None else None}
                for p in self.positions.values()], f"the active positions of risk profile {self.schema.risk_name!r}")

    async def check(self, args: RiskCheckArgs) -> RiskEvent | None:
        """None when every validation passes; else the rejection (the sink announces it)."""
        for v in self.schema.validations:
            try:
                await maybe_await(v.validate(args))
            except Exception as e:  # noqa: BLE001 - raising is how a validation rejects
                return RiskEvent(symbol=args.symbol, pending_signal=args.pending_signal,
                                 strategy_name=args.strategy_name, exchange_name=args.exchange_name,
                                 current_price=args.current_price,
                                 active_position_count=args.active_position_count,
                                 comment=v.note or "N/A", timestamp=args.timestamp, backtest=self.backtest,
                                 risk_name=self.schema.risk_name, error=e)
        return None


# One book per (risk name, mode): part of the module state, cleared by bk.reset().
_books: dict[tuple[str, bool], RiskBook] = _state.register("risk_books", {})


def book(risk_name: str, backtest: bool) -> RiskBook:
    """The shared book of `risk_name` in one mode (created on first use)."""
    key = (risk_name, backtest)
    b = _books.get(key)
    if b is None:
        b = _books[key] = RiskBook(registry.get_risk(risk_name), backtest)
    return b
