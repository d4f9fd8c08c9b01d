"""The sink: the one place where a machine's events take effect, in a fixed order.

persist (live) -> risk books -> user callbacks -> run log -> hub. The golden and crash
tests pin this order: state is durable before anyone hears of a transition, and a
close cannot be repeated after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._hub import call_reporting, hub
from .._logging import ErrorLog
from .._schema import StrategySchema, callback
from ..events import PartialEvent, PerformanceEvent, RiskCheckArgs, RiskEvent, SignalRow, TickResult
from .account import Account
from .risk import RiskBook
from .runs import Run, RunError

Snapshot = Callable[[], dict[str, Any]]


class Persist(Protocol):
    """Where a machine's state goes before its events are heard (live), or nowhere (backtest)."""

    def bind(self, snapshot: Snapshot) -> None: ...
    def load(self) -> dict[str, Any] | None: ...
    def transition(self, event: TickResult | PartialEvent) -> None: ...
    def describe(self) -> str: ...


class NoPersist:
    """Backtests keep state in memory only."""

    def bind(self, snapshot: Snapshot) -> None:
        pass

    def load(self) -> dict[str, Any] | None:
        return None

    def transition(self, event: TickResult | PartialEvent) -> None:
        pass

    def describe(self) -> str:
        return "memory"


_STATEFUL = frozenset({"scheduled", "opened", "closed", "cancelled"})
_CALLBACKS = ("on_open", "on_close", "on_schedule", "on_cancel", "on_tick", "on_idle", "on_active",
              "on_write", "on_partial_profit", "on_partial_loss")


class Sink:
    """Applies the events of one (mode, symbol, strategy) machine."""

    def __init__(self, schema: StrategySchema, symbol: str, *, backtest: bool, run: Run,
                 books: Sequence[RiskBook] = (), persist: Persist | None = None, account: Account | None = None,
                 strict: bool = False):
        self.symbol = symbol
        self.strict = strict  # raise the first error of user code or the exchange instead of reporting it
        self._log = ErrorLog()
        self._raised: BaseException | None = None
        self.strategy_name = schema.strategy_name
        self.backtest = backtest
        self.run = run
        self.books = list(books)
        self.persist: Persist = persist or NoPersist()
        self.account = account if account is not None else Account()
        self._cb = {name: callback(schema.callbacks, name) for name in _CALLBACKS}
        self._any_callbacks = any(fn is not None for fn in self._cb.values())
        self._tick_callbacks = self._cb["on_tick"] is not None or self._cb["on_idle"] is not None
        self._progress_callbacks = self._cb["on_partial_profit"] is not None or self._cb["on_partial_loss"] is not None
        self._topic = "signal_backtest" if backtest else "signal_live"
        self._seen = -1  # the hub version the two answers below were read at
        self._ticks = self._progress = True

    # --- who is listening (the machine skips work nobody sees) --------------------------

    def _listeners(self) -> None:
        """Read again who listens (listeners may come and go during a run, even from strategy code)."""
        self._seen = hub.version
        self._ticks = self._tick_callbacks or hub.has(self._topic) or hub.has("signal")
        self._progress = self._progress_callbacks or hub.has("partial_profit") or hub.has("partial_loss")

    @property
    def observes_ticks(self) -> bool:
        """True when someone sees idle ticks, so no frame may be skipped."""
        if self._seen != hub.version:
            self._listeners()
        return self._ticks

    @property
    def observes_progress(self) -> bool:
        if self._seen != hub.version:
            self._listeners()
        return self._progress

    # --- the effects --------------------------------------------------------------------

    async def apply(self, result: TickResult) -> None:
        """One tick result: persist -> risk books -> account -> callbacks -> run log -> hub."""
        action = result.action
        if action in _STATEFUL:
            self.persist.transition(result)
        if result.action == "opened":
            for b in self.books:
                b.add(self.strategy_name, self.symbol, result.signal, result.signal.pending_at)
            self.account.opened(result.signal)
        elif result.action == "closed":
            for b in self.books:
                b.remove(self.strategy_name, self.symbol, result.close_timestamp)
            self.account.closed(result)
        if self._any_callbacks:
            await self._callbacks(result)
        if action != "idle":
            self.run.add(result)
        if hub.has(self._topic):
            await hub.emit(self._topic, result)
        if hub.has("signal"):
            await hub.emit("signal", result)

    async def _callbacks(self, r: TickResult) -> None:
        s, bt = self.symbol, self.backtest
        if r.action == "opened":
            await self._call("on_write", s, r.signal, bt)
            await self._call("on_open", s, r.signal, r.signal.price_open, bt)
        elif r.action == "closed":
            await self._call("on_close", s, r.signal, r.current_price, bt)
            await self._call("on_write", s, None, bt)
        elif r.action == "scheduled":
            await self._call("on_schedule", s, r.signal, r.current_price, bt)
        elif r.action == "cancelled":
            await self._call("on_cancel", s, r.signal, r.current_price, bt)
        elif r.action == "idle":
            await self._call("on_idle", s, r.current_price, bt)
        await self._call("on_tick", s, r, bt)

    async def partial(self, event: PartialEvent) -> None:
        """A new 10 % level toward TP or SL: persist -> run log -> hub."""
        self.persist.transition(event)
        self.run.partials.append(event)
        await hub.emit(f"partial_{event.action}", event)

    async def progress(self, row: SignalRow, price: float, percent_tp: float, percent_sl: float) -> None:
        """on_partial_profit / on_partial_loss with the position's progress at `price`."""
        if percent_tp > 0:
            await self._call("on_partial_profit", self.symbol, row, price, percent_tp, self.backtest)
        elif percent_sl > 0:
            await self._call("on_partial_loss", self.symbol, row, price, percent_sl, self.backtest)

    async def risk(self, book: RiskBook, args: RiskCheckArgs, rejection: RiskEvent | None) -> None:
        """A risk check's outcome: the profile's callbacks -> run log -> hub."""
        cbs = book.schema.callbacks
        if rejection is None:
            await self._user(callback(cbs, "on_allowed"), (args.symbol, args), "risk callback on_allowed")
            return
        await self._user(callback(cbs, "on_rejected"), (args.symbol, args), "risk callback on_rejected")
        self.run.rejections.append(rejection)
        if rejection.error is not None:
            await hub.emit("validation", rejection.error)
        await hub.emit("risk", rejection)

    async def refused(self, rejection: RiskEvent) -> None:
        """A trade the account cannot fund: a risk rejection without a profile (run log -> hub)."""
        self.run.rejections.append(rejection)
        await hub.emit("risk", rejection)

    async def restored(self, pending: SignalRow | None, scheduled: SignalRow | None, price: float) -> None:
        """State loaded at start-up: risk books and the account follow the position record, then
        on_active / on_schedule."""
        if pending is not None:
            self.account.opened(pending)
        for b in self.books:
            if pending is not None:
                b.add(self.strategy_name, self.symbol, pending, pending.pending_at)
            else:
                b.remove(self.strategy_name, self.symbol)
        if pending is not None:
            await self._call("on_active", self.symbol, pending, price, self.backtest)
        if scheduled is not None:
            await self._call("on_schedule", self.symbol, scheduled, price, self.backtest)

    async def error(self, error: BaseException, where: str) -> None:
        """An error of user code or the exchange: kept in the run log, logged (the first of each
        kind at WARNING, repeats counted) and sent to listen_error; with strict, raised instead."""
        if error is self._raised:
            raise error  # strict: already recorded, on its way out through an outer handler
        self.run.errors.append(RunError(where, error))
        self._log.report(where, error)
        if self.strict:
            self._raised = error
            raise error
        await hub.emit("error", error)

    async def performance(self, event: PerformanceEvent) -> None:
        self.run.perf.append(event)
        if hub.has("performance"):
            await hub.emit("performance", event)

    async def _call(self, name: str, *args: Any) -> None:
        fn = self._cb[name]
        if fn is not None:
            await self._user(fn, args, f"{self.strategy_name}.{name}")

    async def _user(self, fn: Callable[..., Any] | None, args: tuple[Any, ...], where: str) -> None:
        """A user callback (sync or async); its exception is this run's error, never further (D19)."""
        await call_reporting(fn, *args, where=where, on_error=self.error)
