"""One strategy on one symbol: idle -> waiting (limit order) -> open -> closed.

The machine decides: it asks the strategy inside the execution context, validates, applies
the rules and builds each transition's event. It performs no effect itself: every event
goes to its sink (persist, risk books, callbacks, run log, hub). `tick(when)` serves live
trading and the backtest frames that the fast path (`rules.py`) does not cover.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
from collections.abc import Coroutine, Generator
from typing import Any

from .._config import cfg
from .._context import ExecutionContext, enter, leave
from .._exchange import ExchangeClient
from .._restore import check_restored
from .._schema import StrategySchema
from .._signal import new_id, plain_note, signal_errors, to_signal, validation_message
from .._time import MINUTE_MS, interval_ms, to_datetime
from ..errors import PersistError, ValidationError
from ..events import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    PartialEvent,
    RiskCheckArgs,
    ScheduledResult,
    Signal,
    SignalRow,
    TickResult,
    WaitingResult,
)
from .pnl import compute_pnl
from .sink import Sink

PARTIAL_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


class Machine:
    """Per (symbol, strategy, mode) state and every transition of a signal."""

    def __init__(self, schema: StrategySchema, exchange: ExchangeClient, symbol: str, sink: Sink):
        self.schema = schema
        self.exchange = exchange
        self.symbol = symbol
        self.sink = sink
        self.backtest = sink.backtest
        self.strategy_name = schema.strategy_name
        self.interval_ms = interval_ms(schema.interval)
        self.pending: SignalRow | None = None     # the open position
        self.scheduled: SignalRow | None = None   # the resting limit order
        self.last_bucket: int | None = None
        self.cursor: int | None = None            # live: the tick in progress or last done
        self.stopped = False
        self._partial: dict[str, tuple[set[int], set[int]]] = {}
        # Returned for ticks nobody observes, instead of building and publishing one each time.
        self._quiet_idle = IdleResult(current_price=math.nan, symbol=symbol, strategy_name=self.strategy_name,
                                      exchange_name=exchange.name, backtest=self.backtest)
        sink.persist.bind(self.snapshot)

    def _base(self, price: float, signal: SignalRow) -> dict[str, Any]:
        return dict(signal=signal, current_price=price, symbol=self.symbol,
                    strategy_name=self.strategy_name, exchange_name=self.exchange.name,
                    backtest=self.backtest)

    # --- transitions shared by tick() and the fast path --------------------------------

    async def open(self, row: SignalRow, when: int, fill_price: float | None = None) -> OpenedResult:
        """Make `row` the open position (a fill when it was a waiting order; a stop order that
        gapped through its trigger fills at `fill_price`)."""
        if row.is_scheduled:
            row = dataclasses.replace(row, pending_at=when, is_scheduled=False,
                                      price_open=row.price_open if fill_price is None else fill_price)
            self.scheduled = None
        self.pending = row
        result = OpenedResult(**self._base(row.price_open, row))
        await self.sink.apply(result)
        return result

    async def close(self, reason: str, price: float, when: int, ambiguous: bool = False) -> ClosedResult:
        row = self.pending
        assert row is not None
        self._partial.pop(row.id, None)
        self.pending = None
        result = ClosedResult(**self._base(price, row), close_reason=reason,  # type: ignore[arg-type]
                              close_timestamp=when, pnl=compute_pnl(row.position, row.price_open, price),
                              ambiguous_exit=ambiguous)
        await self.sink.apply(result)
        return result

    async def cancel(self, price: float, when: int) -> CancelledResult:
        row = self.scheduled
        assert row is not None
        self.scheduled = None
        result = CancelledResult(**self._base(price, row), close_timestamp=when)
        await self.sink.apply(result)
        return result

    async def fill(self, price: float, when: int, fill_price: float | None = None) -> OpenedResult | CancelledResult:
        """The waiting order's price was reached: open it, unless a risk profile refuses (then
        it is cancelled at `price`)."""
        row = self.scheduled
        assert row is not None
        if not await self.risk_ok(_as_signal(row), row.price_open, when):
            return await self.cancel(price, when)
        return await self.open(row, when, fill_price)

    async def risk_ok(self, signal: Signal, price: float, when: int) -> bool:
        """Every risk profile of the strategy allows `signal` (the first refusal wins)."""
        for b in self.sink.books:
            positions = b.active_at(when)
            args = RiskCheckArgs(
                pending_signal=signal, symbol=self.symbol, strategy_name=self.strategy_name,
                exchange_name=self.exchange.name, current_price=price, timestamp=when,
                active_position_count=len(positions), active_positions=positions)
            rejection = await b.check(args)
            await self.sink.risk(b, args, rejection)
            if rejection is not None:
                return False
        return True

    async def progress(self, price: float, when: int) -> tuple[float, float]:
        """Progress of the open position toward TP / SL; each new 10 % level is an event."""
        row = self.pending
        assert row is not None
        long = row.position == "long"
        d = (price - row.price_open) if long else (row.price_open - price)
        ptp = psl = 0.0
        if d > 0:
            ptp = min(d / ((row.price_take_profit - row.price_open) if long
                           else (row.price_open - row.price_take_profit)) * 100, 100)
            await self._levels(row, 0, ptp, price, when)
        elif d < 0:
            psl = min(-d / ((row.price_open - row.price_stop_loss) if long
                            else (row.price_stop_loss - row.price_open)) * 100, 100)
            await self._levels(row, 1, psl, price, when)
        await self.sink.progress(row, price, ptp, psl)
        return ptp, psl

    async def _levels(self, row: SignalRow, side: int, percent: float, price: float, when: int) -> None:
        reached = self._partial.setdefault(row.id, (set(), set()))[side]
        for level in PARTIAL_LEVELS:
            if percent >= level and level not in reached:
                reached.add(level)
                await self.sink.partial(PartialEvent(
                    symbol=self.symbol, strategy_name=self.strategy_name,
                    exchange_name=self.exchange.name, signal=row, current_price=price,
                    level=level, backtest=self.backtest, timestamp=when,
                    action="profit" if side == 0 else "loss"))

    # --- state (live persistence reads it through the sink) ----------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "strategy_name": self.strategy_name,
            "exchange_name": self.exchange.name,
            "pending": self.pending.to_dict() if self.pending else None,
            "scheduled": self.scheduled.to_dict() if self.scheduled else None,
            "partial": {k: [sorted(p), sorted(loss)] for k, (p, loss) in self._partial.items()},
            "last_bucket": self.last_bucket,
            "cursor": self.cursor,
        }

    def restore(self, data: dict[str, Any], where: str) -> None:
        """Take over a saved snapshot (`where` names it in errors)."""
        check_restored(data, where, self.symbol, self.strategy_name, self.exchange.name)
        try:
            self.pending = SignalRow(**data["pending"]) if data.get("pending") else None
            self.scheduled = SignalRow(**data["scheduled"]) if data.get("scheduled") else None
            self._partial = {k: (set(p), set(loss)) for k, (p, loss) in data.get("partial", {}).items()}
        except (TypeError, ValueError) as e:
            raise PersistError(f"saved live state {where} is malformed: {e}") from e
        self.last_bucket = data.get("last_bucket")
        self.cursor = data.get("cursor")

    async def announce_restored(self, when: int) -> None:
        """Risk books follow the restored position; on_active / on_schedule fire for it."""
        price = math.nan
        if self.pending is not None or self.scheduled is not None:
            token = enter(ExecutionContext(self.symbol, when, self.backtest, self.exchange, self.strategy_name))
            try:
                price = await self.exchange.average_price(self.symbol, when)
            except Exception as e:  # noqa: BLE001 - an outage at start-up must not lose the position
                await self.sink.error(e, f"{self.strategy_name} restore")
            finally:
                leave(token)
        await self.sink.restored(self.pending, self.scheduled, price)

    # --- the tick ----------------------------------------------------------------------

    async def tick(self, when: int) -> TickResult:
        """Advance the state machine at `when` (epoch ms) and return the tick result."""
        token = enter(ExecutionContext(self.symbol, when, self.backtest, self.exchange, self.strategy_name))
        try:
            if self.scheduled is not None:
                return await self._tick_waiting(self.scheduled, when)
            if self.pending is not None:
                return await self._tick_open(self.pending, when)
            return await self._tick_idle(when)
        finally:
            leave(token)

    async def _tick_idle(self, when: int) -> TickResult:
        price = await self.exchange.average_price(self.symbol, when)
        row = None if self.stopped else await self._new_signal(when, price)
        if row is None:
            return await self._idle(price)
        if row.is_scheduled:
            long = row.position == "long"
            if not triggered(row, price):
                return await self._schedule(row, price)
            # D22: a limit order that is already marketable fills at the current price, as an
            # exchange would; one already through its stop-loss never opens.
            if (price <= row.price_stop_loss) if long else (price >= row.price_stop_loss):
                await self._schedule(row, price)
                return await self.cancel(price, when)
            row = dataclasses.replace(row, price_open=price, is_scheduled=False)
        if not self.sink.books or await self.risk_ok(_as_signal(row), row.price_open, when):
            return await self.open(row, when)
        return await self._idle(price)  # refused by the second risk check, before opening

    async def _schedule(self, row: SignalRow, price: float) -> ScheduledResult:
        self.scheduled = row
        result = ScheduledResult(**self._base(price, row))
        await self.sink.apply(result)
        return result

    async def _idle(self, price: float) -> IdleResult:
        if not self.sink.observes_ticks:
            return self._quiet_idle
        result = IdleResult(current_price=price, symbol=self.symbol, strategy_name=self.strategy_name,
                            exchange_name=self.exchange.name, backtest=self.backtest)
        await self.sink.apply(result)
        return result

    async def _tick_waiting(self, row: SignalRow, when: int) -> TickResult:
        price = await self.exchange.average_price(self.symbol, when)
        if self.stopped or when - row.scheduled_at >= cfg.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS:
            return await self.cancel(price, when)
        long = row.position == "long"
        if (price <= row.price_stop_loss) if long else (price >= row.price_stop_loss):
            return await self.cancel(price, when)  # D18: the stop beat the fill
        if triggered(row, price):
            return await self.fill(price, when)
        result = WaitingResult(**self._base(price, row))
        await self.sink.apply(result)
        return result

    async def _tick_open(self, row: SignalRow, when: int) -> TickResult:
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
        await self.sink.apply(result)
        return result

    # --- asking the strategy -----------------------------------------------------------

    def may_ask(self, when: int) -> bool:
        """D16: one get_signal call per aligned interval bucket."""
        return not self.stopped and when // self.interval_ms != self.last_bucket

    async def _new_signal(self, when: int, price: float) -> SignalRow | None:
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
            if self.sink.books and not await self.risk_ok(sig, price, when):
                return None
            return self._build(sig, when, price)
        except TimeoutError:
            await self.sink.error(TimeoutError(
                f"get_signal of strategy {self.strategy_name!r} for {self.symbol} took longer than "
                f"CC_MAX_SIGNAL_GENERATION_SECONDS={cfg.CC_MAX_SIGNAL_GENERATION_SECONDS}s; no signal"),
                self.strategy_name)
        except Exception as e:  # noqa: BLE001 - a failing strategy call is a recoverable error
            await self.sink.error(e, self.strategy_name)
        return None

    def _build(self, sig: Signal, when: int, price: float) -> SignalRow:
        po = sig.price_open
        met = sig.minute_estimated_time
        if sig.order_type not in ("limit", "stop") or (sig.order_type == "stop" and po is None):
            raise ValidationError(f"Invalid signal for {sig.position} position:\norder_type must be 'limit' or "
                                  f"'stop' and 'stop' needs price_open, got order_type={sig.order_type!r} "
                                  f"price_open={po!r}")
        row = SignalRow(
            id=sig.id or new_id(), position=sig.position,  # type: ignore[arg-type]  # checked below
            price_open=price if po is None else po,
            price_take_profit=sig.price_take_profit, price_stop_loss=sig.price_stop_loss,
            minute_estimated_time=_whole(met),
            note=plain_note(sig.note), symbol=self.symbol, strategy_name=self.strategy_name,
            exchange_name=self.exchange.name, scheduled_at=when, pending_at=when, is_scheduled=po is not None,
            order_type=sig.order_type)
        errors = signal_errors(row, price)
        if errors:
            raise ValidationError(validation_message(row, errors))
        return row


def triggered(row: SignalRow, price: float) -> bool:
    """A waiting order fills at `price`: a limit at or better than price_open, a stop once the
    price has moved through it (a long stop when it rises to price_open)."""
    long = row.position == "long"
    if row.order_type == "stop":
        return price >= row.price_open if long else price <= row.price_open
    return price <= row.price_open if long else price >= row.price_open


def _as_signal(row: SignalRow) -> Signal:
    return Signal(position=row.position, price_take_profit=row.price_take_profit,
                  price_stop_loss=row.price_stop_loss, minute_estimated_time=row.minute_estimated_time,
                  price_open=row.price_open, note=row.note, id=row.id, order_type=row.order_type)


def _whole(minutes: object) -> Any:
    """An integral float lifetime as int (60.0 -> 60); anything else unchanged for validation."""
    return int(minutes) if isinstance(minutes, float) and minutes.is_integer() else minutes


async def _with_timeout(value: object, seconds: float) -> Any:
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

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any):
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
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
