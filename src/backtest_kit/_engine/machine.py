"""One strategy on one symbol: idle -> waiting (limit order) -> open -> closed.

`tick(when)` is the whole state machine for live trading and for backtest frames that the
fast path (`scan.py`) does not cover. Opening, filling, closing and cancelling live here so
both modes produce the same events, callbacks and results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import inspect
from typing import Any, Callable, Optional, Sequence

from .._time import MINUTE_MS, interval_ms, to_datetime
from .._config import cfg
from .._context import ExecutionContext, enter, leave
from ..errors import BacktestKitError, ValidationError
from .._hub import call_reporting, hub
from .._exchange import ExchangeClient
from .pnl import compute_pnl
from .._schema import StrategySchema, callback
from .risk import RiskCheckArgs
from .._signal import (ActiveResult, CancelledResult, ClosedResult, IdleResult, OpenedResult,
                     ScheduledResult, Signal, SignalRow, WaitingResult, new_id, plain_note,
                     signal_errors, to_signal, validation_message)

PARTIAL_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


class StrategyState:
    """Per (symbol, strategy, mode) state and every transition of a signal."""

    def __init__(self, schema: StrategySchema, exchange: ExchangeClient, symbol: str, *,
                 backtest: bool, record: Callable[[Any], None] | None = None, store=None,
                 risks: Sequence = ()):
        self.schema = schema
        self.exchange = exchange
        self.symbol = symbol
        self.backtest = backtest
        self.strategy_name = schema.strategy_name
        self.interval_ms = interval_ms(schema.interval)
        self.pending: Optional[SignalRow] = None     # the open position
        self.scheduled: Optional[SignalRow] = None   # the resting limit order
        self.last_bucket: Optional[int] = None
        self.stopped = False
        self._record = record
        self._partial: dict[str, tuple[set, set]] = {}
        self.store = store            # live: where state is written before each event
        self.risks = list(risks)      # RiskBooks of the strategy's risk_name + risk_list
        self.journal: list[dict] = []  # live: every closed / cancelled result, durable
        self.cursor: Optional[int] = None  # live: the tick in progress or last done
        cbs = schema.callbacks
        self._cb = {name: callback(cbs, name) for name in (
            "on_open", "on_close", "on_schedule", "on_cancel", "on_tick", "on_idle", "on_active",
            "on_write", "on_partial_profit", "on_partial_loss")}
        self._signal_topic = "signal_backtest" if backtest else "signal_live"
        self._quiet_idle = IdleResult(current_price=float("nan"), symbol=symbol, strategy_name=self.strategy_name,
                                      exchange_name=exchange.name, backtest=backtest)

    # --- observation -------------------------------------------------------------------

    @property
    def observes_ticks(self) -> bool:
        """True when someone sees idle ticks, so no frame may be skipped."""
        return (hub.has(self._signal_topic) or hub.has("signal")
                or self._cb["on_tick"] is not None or self._cb["on_idle"] is not None)

    @property
    def observes_progress(self) -> bool:
        return (hub.has("partial_profit") or hub.has("partial_loss")
                or self._cb["on_partial_profit"] is not None or self._cb["on_partial_loss"] is not None)

    async def _call(self, name: str, *args) -> None:
        await call_reporting(self._cb[name], *args, where=f"{self.strategy_name}.{name}")

    async def publish(self, result) -> None:
        """on_tick, the run's record, then the signal events."""
        if self._cb["on_tick"] is not None:
            await self._call("on_tick", self.symbol, result, self.backtest)
        if self._record is not None and result.action != "idle":
            self._record(result)
        if hub.has(self._signal_topic):
            await hub.emit(self._signal_topic, result)
        if hub.has("signal"):
            await hub.emit("signal", result)

    def _base(self, price: float, signal: Optional[SignalRow]) -> dict:
        return dict(signal=signal, current_price=price, symbol=self.symbol,
                    strategy_name=self.strategy_name, exchange_name=self.exchange.name,
                    backtest=self.backtest)

    # --- transitions shared by tick() and the fast path --------------------------------

    async def open(self, row: SignalRow, when: int) -> OpenedResult:
        """Make `row` the open position (a fill when it was a limit order)."""
        if row.is_scheduled:
            row = dataclasses.replace(row, pending_at=when, is_scheduled=False)
            self.scheduled = None
        self.pending = row
        self.save()
        for b in self.risks:
            b.add(self.strategy_name, self.symbol, row, when)
        await self._call("on_write", self.symbol, row, self.backtest)
        await self._call("on_open", self.symbol, row, row.price_open, self.backtest)
        result = OpenedResult(**self._base(row.price_open, row))
        await self.publish(result)
        return result

    async def close(self, reason: str, price: float, when: int) -> ClosedResult:
        row = self.pending
        pnl = compute_pnl(row.position, row.price_open, price)
        self._partial.pop(row.id, None)
        self.pending = None
        for b in self.risks:
            b.remove(self.strategy_name, self.symbol, when)
        result = ClosedResult(**self._base(price, row), close_reason=reason, close_timestamp=when, pnl=pnl)
        self._journal(result)  # written before on_close, so a crash cannot repeat the close
        await self._call("on_close", self.symbol, row, price, self.backtest)
        await self._call("on_write", self.symbol, None, self.backtest)
        await self.publish(result)
        return result

    async def cancel(self, price: float, when: int) -> CancelledResult:
        row = self.scheduled
        self.scheduled = None
        result = CancelledResult(**self._base(price, row), close_timestamp=when)
        self._journal(result)
        await self._call("on_cancel", self.symbol, row, price, self.backtest)
        await self.publish(result)
        return result

    async def fill(self, price: float, when: int):
        """The waiting order's price was reached: open it, unless a risk profile refuses (then
        it is cancelled at `price`)."""
        row = self.scheduled
        if not await self.risk_ok(_as_signal(row), row.price_open, when):
            return await self.cancel(price, when)
        return await self.open(row, when)

    async def risk_ok(self, signal, price: float, when: int) -> bool:
        """Every risk profile of the strategy allows `signal` (the first refusal wins)."""
        for b in self.risks:
            positions = b.active_at(when)
            rejection = await b.check(RiskCheckArgs(
                pending_signal=signal, symbol=self.symbol, strategy_name=self.strategy_name,
                exchange_name=self.exchange.name, current_price=price, timestamp=when,
                active_position_count=len(positions), active_positions=positions))
            if rejection is not None:
                if self._record is not None:
                    self._record(rejection)
                return False
        return True

    async def progress(self, price: float, when: int) -> tuple[float, float]:
        """Progress of the open position toward TP / SL; fires each new 10 % level once."""
        row = self.pending
        long = row.position == "long"
        d = (price - row.price_open) if long else (row.price_open - price)
        ptp = psl = 0.0
        if d > 0:
            ptp = min(d / ((row.price_take_profit - row.price_open) if long
                           else (row.price_open - row.price_take_profit)) * 100, 100)
            await self._levels(row, 0, ptp, price, when)
            await self._call("on_partial_profit", self.symbol, row, price, ptp, self.backtest)
        elif d < 0:
            psl = min(-d / ((row.price_open - row.price_stop_loss) if long
                            else (row.price_stop_loss - row.price_open)) * 100, 100)
            await self._levels(row, 1, psl, price, when)
            await self._call("on_partial_loss", self.symbol, row, price, psl, self.backtest)
        return ptp, psl

    async def _levels(self, row: SignalRow, side: int, percent: float, price: float, when: int) -> None:
        topic = "partial_profit" if side == 0 else "partial_loss"
        reached = self._partial.setdefault(row.id, (set(), set()))[side]
        for level in PARTIAL_LEVELS:
            if percent >= level and level not in reached:
                reached.add(level)
                self.save()
                event = PartialEvent(
                    symbol=self.symbol, strategy_name=self.strategy_name,
                    exchange_name=self.exchange.name, signal=row, current_price=price,
                    level=level, backtest=self.backtest, timestamp=when, action=topic[8:])
                if self._record is not None:
                    self._record(event)
                await hub.emit(topic, event)

    # --- persistence (live) -------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "symbol": self.symbol, "strategy_name": self.strategy_name,
            "exchange_name": self.exchange.name,
            "pending": self.pending.to_dict() if self.pending else None,
            "scheduled": self.scheduled.to_dict() if self.scheduled else None,
            "partial": {k: [sorted(p), sorted(l)] for k, (p, l) in self._partial.items()},
            "last_bucket": self.last_bucket,
            "cursor": self.cursor,
            "journal": self.journal,
        }

    def save(self) -> None:
        if self.store is not None:
            self.store.save(self.snapshot())

    def _journal(self, result) -> None:
        if self.store is not None:
            entry = {"action": result.action, "signal": result.signal.to_dict(),
                     "current_price": result.current_price, "close_timestamp": result.close_timestamp}
            if result.action == "closed":
                entry["close_reason"] = result.close_reason
                entry["pnl"] = dataclasses.asdict(result.pnl)
            self.journal.append(entry)
            self.save()

    def load_saved(self) -> bool:
        """Load the saved live state, if any; True when something was restored."""
        data = self.store.load() if self.store is not None else None
        if not data:
            return False
        if data.get("exchange_name") != self.exchange.name:
            raise BacktestKitError(
                f"saved live state of {self.symbol}/{self.strategy_name} belongs to exchange "
                f"{data.get('exchange_name')!r}, not {self.exchange.name!r}; it may hold an open "
                f"position — close it there or remove {self.store.describe()}")
        try:
            self.pending = SignalRow(**data["pending"]) if data.get("pending") else None
            self.scheduled = SignalRow(**data["scheduled"]) if data.get("scheduled") else None
            self._partial = {k: (set(p), set(l)) for k, (p, l) in data.get("partial", {}).items()}
        except (TypeError, ValueError) as e:
            raise BacktestKitError(f"saved live state {self.store.describe()} is malformed: {e}") from e
        self.last_bucket = data.get("last_bucket")
        self.cursor = data.get("cursor")
        self.journal = list(data.get("journal", []))
        for b in self.risks:  # the position file is the truth; risk books follow it
            if self.pending is not None:
                b.add(self.strategy_name, self.symbol, self.pending, self.pending.pending_at)
            else:
                b.remove(self.strategy_name, self.symbol)
        return True

    async def announce_restored(self, when: int) -> None:
        """on_active for a restored position, on_schedule for a restored limit order."""
        if self.pending is None and self.scheduled is None:
            return
        token = enter(ExecutionContext(self.symbol, when, self.backtest, self.exchange, self.strategy_name))
        try:
            try:
                price = await self.exchange.average_price(self.symbol, when)
            except Exception as e:  # noqa: BLE001 - an outage at start-up must not lose the position
                await hub.report(e, f"{self.strategy_name} restore")
                price = math.nan
            if self.pending is not None:
                await self._call("on_active", self.symbol, self.pending, price, self.backtest)
            if self.scheduled is not None:
                await self._call("on_schedule", self.symbol, self.scheduled, price, self.backtest)
        finally:
            leave(token)

    # --- the tick ----------------------------------------------------------------------

    async def tick(self, when: int):
        """Advance the state machine at `when` (epoch ms) and return the tick result."""
        token = enter(ExecutionContext(self.symbol, when, self.backtest, self.exchange, self.strategy_name))
        try:
            return await self._tick(when)
        finally:
            leave(token)

    async def _tick(self, when: int):
        if self.scheduled is not None:
            return await self._tick_waiting(when)
        if self.pending is not None:
            return await self._tick_open(when)
        price = await self.exchange.average_price(self.symbol, when)
        row = None if self.stopped else await self._new_signal(when, price)
        if row is None:
            return await self._idle(price)
        if row.is_scheduled:
            self.scheduled = row
            self.save()
            await self._call("on_schedule", self.symbol, row, price, self.backtest)
            result = ScheduledResult(**self._base(price, row))
            await self.publish(result)
            return result
        if not self.risks or await self.risk_ok(_as_signal(row), row.price_open, when):
            return await self.open(row, when)
        return await self._idle(price)  # refused by the second risk check, before opening

    async def _idle(self, price: float) -> IdleResult:
        if not self.observes_ticks:
            # Nobody sees this tick: reuse one result object instead of building and publishing.
            self._quiet_idle.current_price = price
            return self._quiet_idle
        if self._cb["on_idle"] is not None:
            await self._call("on_idle", self.symbol, price, self.backtest)
        result = IdleResult(current_price=price, symbol=self.symbol, strategy_name=self.strategy_name,
                            exchange_name=self.exchange.name, backtest=self.backtest)
        await self.publish(result)
        return result

    async def _tick_waiting(self, when: int):
        row = self.scheduled
        price = await self.exchange.average_price(self.symbol, when)
        if self.stopped or when - row.scheduled_at >= cfg.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS:
            return await self.cancel(price, when)
        long = row.position == "long"
        if (price <= row.price_stop_loss) if long else (price >= row.price_stop_loss):
            return await self.cancel(price, when)  # D18: the stop beat the fill
        if (price <= row.price_open) if long else (price >= row.price_open):
            return await self.fill(price, when)
        result = WaitingResult(**self._base(price, row))
        await self.publish(result)
        return result

    async def _tick_open(self, when: int):
        row = self.pending
        price = await self.exchange.average_price(self.symbol, when)
        long = row.position == "long"
        if when - row.pending_at >= row.minute_estimated_time * MINUTE_MS:
            return await self.close("time_expired", price, when)
        if (price >= row.price_take_profit) if long else (price <= row.price_take_profit):
            return await self.close("take_profit", row.price_take_profit, when)
        if (price <= row.price_stop_loss) if long else (price >= row.price_stop_loss):
            return await self.close("stop_loss", row.price_stop_loss, when)
        ptp, psl = await self.progress(price, when)
        result = ActiveResult(**self._base(price, row), percent_tp=ptp, percent_sl=psl)
        await self.publish(result)
        return result

    # --- asking the strategy -----------------------------------------------------------

    def may_ask(self, when: int) -> bool:
        """D16: one get_signal call per aligned interval bucket."""
        return not self.stopped and when // self.interval_ms != self.last_bucket

    async def _new_signal(self, when: int, price: float) -> Optional[SignalRow]:
        bucket = when // self.interval_ms
        if bucket == self.last_bucket:
            return None
        self.last_bucket = bucket
        try:
            value = await _with_timeout(self.schema.get_signal(self.symbol, to_datetime(when)),
                                        cfg.CC_MAX_SIGNAL_GENERATION_SECONDS)
            if value is None:
                return None
            sig = to_signal(value)
            if self.risks and not await self.risk_ok(sig, price, when):
                return None
            return self._build(sig, when, price)
        except TimeoutError:
            await hub.report(TimeoutError(
                f"get_signal of strategy {self.strategy_name!r} for {self.symbol} took longer than "
                f"CC_MAX_SIGNAL_GENERATION_SECONDS={cfg.CC_MAX_SIGNAL_GENERATION_SECONDS}s; no signal"),
                self.strategy_name)
        except Exception as e:  # noqa: BLE001 - a failing strategy call is a recoverable error
            await hub.report(e, self.strategy_name)
        return None

    def _build(self, sig, when: int, price: float) -> SignalRow:
        po = sig.price_open
        long = sig.position == "long"
        scheduled = po is not None and not ((price <= po) if long else (price >= po))
        row = SignalRow(
            id=sig.id or new_id(), position=sig.position,
            price_open=price if po is None else po,
            price_take_profit=sig.price_take_profit, price_stop_loss=sig.price_stop_loss,
            minute_estimated_time=sig.minute_estimated_time, note=plain_note(sig.note),
            symbol=self.symbol, strategy_name=self.strategy_name, exchange_name=self.exchange.name,
            scheduled_at=when, pending_at=when, is_scheduled=scheduled)
        errors = signal_errors(row, price)
        if errors:
            raise ValidationError(validation_message(row, errors))
        if isinstance(row.minute_estimated_time, float):
            row.minute_estimated_time = int(row.minute_estimated_time)
        return row


def _as_signal(row: SignalRow) -> Signal:
    return Signal(position=row.position, price_take_profit=row.price_take_profit,
                  price_stop_loss=row.price_stop_loss, minute_estimated_time=row.minute_estimated_time,
                  price_open=row.price_open, note=row.note, id=row.id)


async def _with_timeout(value, seconds: float):
    """Await `value` under a timeout; a coroutine that finishes without suspending (the usual
    backtest case, all candles cached) skips the timer machinery entirely."""
    if not inspect.isawaitable(value):
        return value
    if not inspect.iscoroutine(value):
        async with asyncio.timeout(seconds):
            return await value
    try:
        yielded = value.send(None)
    except StopIteration as done:
        return done.value
    async with asyncio.timeout(seconds):
        return await _Resumed(value, yielded)


class _Resumed:
    """Awaitable that continues a coroutine already advanced to its first suspension."""

    __slots__ = ("coro", "first")

    def __init__(self, coro, first):
        self.coro, self.first = coro, first

    def __await__(self):
        coro, yielded = self.coro, self.first
        while True:
            try:
                sent = yield yielded
            except BaseException as e:  # noqa: BLE001 - forwarded into the coroutine
                try:
                    yielded = coro.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as done:
                    return done.value


@dataclasses.dataclass(slots=True, kw_only=True)
class PartialEvent:
    """Payload of listen_partial_profit / listen_partial_loss."""

    symbol: str
    strategy_name: str
    exchange_name: str
    signal: SignalRow
    current_price: float
    level: int
    backtest: bool
    timestamp: int
    action: str = "profit"  # "profit" | "loss"
