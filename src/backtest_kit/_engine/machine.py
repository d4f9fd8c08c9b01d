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
from collections.abc import Awaitable, Coroutine, Generator
from datetime import datetime, timedelta
from types import CoroutineType
from typing import Any

import numpy as np

from .. import _registry as registry
from .._candles import Candles, Vwaps, WindowVwap, window_vwap
from .._config import cfg
from .._context import ExecutionContext, enter, leave
from .._exchange import ExchangeClient
from .._restore import check_restored
from .._schema import StrategySchema
from .._signal import new_id, plain_note, signal_errors, to_signal, validation_message
from .._sizing import PositionSize
from .._time import MINUTE_MS, interval_ms, iso, to_datetime
from ..errors import PersistError, ValidationError
from ..events import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    Outcome,
    PartialEvent,
    RiskCheckArgs,
    RiskEvent,
    ScheduledResult,
    Signal,
    SignalRow,
    TickResult,
    WaitingResult,
)
from .pnl import compute_pnl
from .rules import decide_exit, decide_waiting, price_at, price_at_end
from .sink import Sink
from .vector import VectorSource

PARTIAL_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
ATR_PERIOD = 14  # candles of the strategy's interval behind an atr-based size


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
        self.evaluated_to: int | None = None      # open time of the first 1m candle not yet evaluated
        self.fingerprint: dict[str, Any] = {}     # live: what the saved state was started with
        self.stopped = False
        self.data_ended = False  # backtest: no candle left to trade on
        # A vectorised strategy (get_signals) answers asks from its per-bar arrays instead.
        self.vector = VectorSource(schema, exchange, symbol) if schema.get_signals is not None else None
        self._partial: dict[str, tuple[set[int], set[int]]] = {}
        # Returned for ticks nobody observes, instead of building and publishing one each time.
        self.quiet_idle = IdleResult(current_price=math.nan, symbol=symbol, strategy_name=self.strategy_name,
                                      exchange_name=exchange.name, backtest=self.backtest)
        # The last ask's time and datetime: the next one is usually an interval later (see _datetime).
        self._asked_ms, self._asked_at = 0, to_datetime(0)
        self._interval = timedelta(milliseconds=self.interval_ms)
        # Backtests price most ticks straight from the cached 1m series (see _tick_idle).
        self._minutes = exchange.series(symbol, "1m") if exchange.backtest else None
        sink.persist.bind(self.snapshot)

    def _base(self, price: float, signal: SignalRow) -> dict[str, Any]:
        return dict(signal=signal, current_price=price, symbol=self.symbol,
                    strategy_name=self.strategy_name, exchange_name=self.exchange.name,
                    backtest=self.backtest)

    # --- transitions shared by tick() and the fast path --------------------------------

    async def open(self, row: SignalRow, when: int, fill_price: float | None = None,
                   quantity: float | None = None) -> OpenedResult:
        """Make `row` the open position (a fill when it was a waiting order; a stop order that
        gapped through its trigger fills at `fill_price`)."""
        if row.is_scheduled:
            row = dataclasses.replace(row, pending_at=when, is_scheduled=False,
                                      price_open=row.price_open if fill_price is None else fill_price,
                                      quantity=quantity)
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
        """The waiting order's price was reached: open it, unless a risk profile refuses or the
        account cannot fund it (then it is cancelled at `price`)."""
        row = self.scheduled
        assert row is not None
        if not await self.risk_ok(_as_signal(row), row.price_open, when):
            return await self.cancel(price, when)
        funded = await self._fund(dataclasses.replace(row, price_open=fill_price or row.price_open), when)
        if funded is None:
            return await self.cancel(price, when)
        return await self.open(row, when, fill_price, funded.quantity)

    async def _fund(self, row: SignalRow, when: int) -> SignalRow | None:
        """`row` with its quantity: from the strategy's sizing schema fed with the equity at `when`
        and the trade's own stop, or all the free equity. None (a risk rejection, "insufficient
        equity") when the account cannot pay for it."""
        account = self.sink.account
        free = account.free_at(when)
        sizing = self.schema.sizing_name
        price = row.price_open
        try:
            quantity = free / price if sizing is None else await self._sized(sizing, row, account.equity_at(when))
        except ValidationError as e:  # e.g. no ATR yet, or a zero stop distance
            await self.sink.error(e, f"{self.strategy_name} sizing")
            return None
        if quantity > 0 and quantity * price <= free * (1 + 1e-12):
            return _with_quantity(row, quantity)
        await self.sink.refused(RiskEvent(
            symbol=self.symbol, pending_signal=_as_signal(row), strategy_name=self.strategy_name,
            exchange_name=self.exchange.name, current_price=price, active_position_count=0,
            comment="insufficient equity" if quantity > 0 else "position size is zero", timestamp=when,
            backtest=self.backtest, risk_name="account"))
        return None

    async def _sized(self, sizing_name: str, row: SignalRow, equity: float) -> float:
        """The existing PositionSize formulas, fed by the run: equity, this trade's stop and TP,
        its closed trades (Kelly) and the strategy interval's candles (ATR)."""
        method = registry.get_sizing(sizing_name).method
        if method == "fixed-percentage":
            return await PositionSize.fixed_percentage(self.symbol, equity, row.price_open, row.price_stop_loss,
                                                       sizing_name=sizing_name)
        if method == "kelly-criterion":
            closed = self.sink.run.closed
            wins = sum(1 for t in closed if t.pnl.pnl_percentage > 0)
            # Until 10 trades have closed the win rate is unknown: assume even odds.
            rate = min(max(wins / len(closed), 0.01), 0.99) if len(closed) >= 10 else 0.5
            ratio = abs(row.price_take_profit - row.price_open) / abs(row.price_open - row.price_stop_loss)
            return await PositionSize.kelly_criterion(self.symbol, equity, row.price_open, rate, ratio,
                                                      sizing_name=sizing_name)
        c = await self.exchange.window(self.symbol, self.schema.interval, row.pending_at, ATR_PERIOD + 1)
        if len(c) < 2:
            raise ValidationError(f"sizing {sizing_name!r}: not enough {self.schema.interval} candles for the ATR "
                                  f"at {iso(row.pending_at)}")
        prev = c.close[:-1]
        true_range = np.maximum(c.high[1:], prev) - np.minimum(c.low[1:], prev)
        return await PositionSize.atr_based(self.symbol, equity, row.price_open, float(true_range.mean()),
                                            sizing_name=sizing_name)

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
        ptp, psl = _percents(row, price)
        if ptp > 0:
            await self._levels(row, 0, ptp, price, when)
        elif psl > 0:
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
            "evaluated_to": self.evaluated_to,
            "fingerprint": self.fingerprint,
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
        self.evaluated_to = data.get("evaluated_to")

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
            if self.scheduled is not None or self.pending is not None:
                return await self._tick_watch(when)
            # Idle (most ticks of a backtest): the candles that price the tick must be there before
            # the strategy is asked; the price itself is read only when a signal or a listener needs it.
            price: float | None = None
            minutes = self._minutes
            if minutes is None or not (minutes.clean_from + cfg.CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS
                                       <= when // MINUTE_MS * MINUTE_MS <= minutes.clean_to):
                # not in the cache as a whole window: fetch it (or fail here, before asking)
                price = await self.exchange.average_price(self.symbol, when)
            value: Any = None
            bucket = when // self.interval_ms
            if not self.stopped and bucket != self.last_bucket:  # D16: one ask per bucket
                self.last_bucket = bucket
                try:
                    if self.vector is not None:  # its arrays (live: recomputed on the recent history)
                        value = self.vector.signal_at(when)
                    else:
                        assert self.schema.get_signal is not None
                        value = self.schema.get_signal(self.symbol, self._datetime(when))
                    if type(value) is CoroutineType:
                        try:
                            suspended = value.send(None)
                        except StopIteration as done:  # finished without suspending: all candles were cached
                            value = done.value
                        else:  # it waits for something: only now is the timeout worth its timer
                            value = await _timed(_Resumed(value, suspended), cfg.CC_MAX_SIGNAL_GENERATION_SECONDS)
                    elif inspect.isawaitable(value):
                        value = await _timed(value, cfg.CC_MAX_SIGNAL_GENERATION_SECONDS)
                except TimeoutError:
                    await self._timed_out()
                    value = None
                except Exception as e:  # noqa: BLE001 - a failing strategy call is a recoverable error
                    await self.sink.error(e, self.strategy_name)
                    value = None
            if value is None:
                if self.sink.observes_ticks:
                    return await self._idle(await self._price(when) if price is None else price)
                return self.quiet_idle
            if price is None:
                price = await self._price(when)
            row = await self._new_signal(value, when, price)
            if row is None:
                return await self._idle(price)
            return await self._tick_idle(row, when, price)
        finally:
            leave(token)

    def _datetime(self, when: int) -> datetime:
        """to_datetime(when), stepped on from the previous ask's when it was one interval before
        (the usual case; the same instant either way)."""
        if when - self._asked_ms == self.interval_ms:
            at = self._asked_at + self._interval
        else:
            at = to_datetime(when)
        self._asked_ms, self._asked_at = when, at
        return at

    async def _price(self, when: int) -> float:
        """The tick's current price: the VWAP of the closed 1m candles before it."""
        minutes = self._minutes
        price = None if minutes is None else minutes.price(when // MINUTE_MS * MINUTE_MS,
                                                           cfg.CC_AVG_PRICE_CANDLES_COUNT)
        return await self.exchange.average_price(self.symbol, when) if price is None else price

    async def _tick_idle(self, row: SignalRow, when: int, price: float) -> TickResult:
        """The strategy gave `row` at `when`: open it, place it as a waiting order, or drop it."""
        if self.backtest and not await self._candles_after(when):
            # D21: the data has ended; a trade opened now could only close before it opened.
            self.data_ended = True
            return await self._idle(price)
        # Rules are applied from the candle that opens at `when` on (it closes after it).
        self.evaluated_to = when // MINUTE_MS * MINUTE_MS
        if row.is_scheduled:
            if not triggered(row, price):
                return await self._schedule(row, price)
            # D22: a limit order that is already marketable fills at the current price, as an
            # exchange would; one already through its stop-loss never opens.
            if past_stop(row, price):
                await self._schedule(row, price)
                return await self.cancel(price, when)
            row = dataclasses.replace(row, price_open=price, is_scheduled=False)
        if not self.sink.books or await self.risk_ok(_as_signal(row), row.price_open, when):
            funded = await self._fund(row, when)
            if funded is not None:
                return await self.open(funded, when)
        return await self._idle(price)  # refused by the second risk check or the account, before opening

    async def _candles_after(self, when: int) -> bool:
        """Any 1m candle within a maximal lifetime from `when` on (the backtest data goes on)."""
        horizon = max(cfg.CC_MAX_SIGNAL_LIFETIME_MINUTES, cfg.CC_SCHEDULE_AWAIT_MINUTES, 1) * MINUTE_MS
        minutes = self._minutes
        if minutes is not None and minutes.clean_from <= when and when + horizon <= minutes.clean_to:
            return True  # cached whole, gap-free and valid: what the range below would find
        return len(await self.exchange.range(self.symbol, "1m", when, when + horizon)) > 0

    async def _schedule(self, row: SignalRow, price: float) -> ScheduledResult:
        self.scheduled = row
        result = ScheduledResult(**self._base(price, row))
        await self.sink.apply(result)
        return result

    async def _idle(self, price: float) -> IdleResult:
        if not self.sink.observes_ticks:
            return self.quiet_idle
        result = IdleResult(current_price=price, symbol=self.symbol, strategy_name=self.strategy_name,
                            exchange_name=self.exchange.name, backtest=self.backtest)
        await self.sink.apply(result)
        return result

    async def _tick_watch(self, when: int) -> TickResult:
        """A waiting order or an open position: the rules over every 1m candle that closed since
        the last one evaluated (normally one; more after a restart, an outage or a slow tick)."""
        price = await self.exchange.average_price(self.symbol, when)
        if self.scheduled is not None and self.stopped:
            return await self.cancel(price, when)  # D18: a stop drops a waiting order at once
        aligned = when // MINUTE_MS * MINUTE_MS
        order = self.scheduled
        if order is not None and order.scheduled_at == aligned and triggered(order, price) and past_stop(order, price):
            # D22 placed this order and cancels it in the same tick (two writes); a live restart
            # killed in between redoes that tick, which must still cancel it.
            return await self.cancel(price, when)
        start = self.evaluated_to
        if start is None:  # state saved before candles were tracked: from the signal's own time
            row = self.scheduled or self.pending
            assert row is not None
            start = (row.scheduled_at if self.scheduled is not None else row.pending_at) // MINUTE_MS * MINUTE_MS
        if start < aligned:
            n = cfg.CC_AVG_PRICE_CANDLES_COUNT
            c = await self.exchange.range(self.symbol, "1m", start - (n - 1) * MINUTE_MS, aligned)
            k0 = int(np.searchsorted(c.timestamp, start))
            if k0 < len(c):
                outcome = await self.evaluate(c, window_vwap(c, n), k0, final=False)
                self.evaluated_to = int(c.timestamp[-1]) + MINUTE_MS
                if outcome is not None:
                    return outcome
        if self.scheduled is not None:
            waiting = WaitingResult(**self._base(price, self.scheduled))
            await self.sink.apply(waiting)
            return waiting
        assert self.pending is not None
        ptp, psl = _percents(self.pending, price)
        active = ActiveResult(**self._base(price, self.pending), percent_tp=ptp, percent_sl=psl)
        await self.sink.apply(active)
        return active

    # --- the rules over candles (both modes) -------------------------------------------

    async def run_to_end(self, when: int) -> Outcome | None:
        """Backtest fast path: run the signal the tick at `when` opened or placed to its end on
        1m candles. None when the signal is still there: no candles came back (later ticks
        watch it), or a waiting order still waits when the data ends (D6)."""
        n = cfg.CC_AVG_PRICE_CANDLES_COUNT
        if self.scheduled is not None:
            count = n - 1 + cfg.CC_SCHEDULE_AWAIT_MINUTES + self.scheduled.minute_estimated_time + 1
        else:
            assert self.pending is not None
            count = self.pending.minute_estimated_time + n  # D15: the full lifetime
        c, v = await self.exchange.minute_series(self.symbol, when - (n - 1) * MINUTE_MS, count)
        if not len(c):
            return None
        k0 = int(c.timestamp.searchsorted(when))  # checks start at the candle that opens at `when`
        token = enter(ExecutionContext(self.symbol, when, self.backtest, self.exchange, self.strategy_name))
        try:
            return await self.evaluate(c, v, k0, final=True)
        finally:
            leave(token)

    async def evaluate(self, c: Candles, v: Vwaps, k0: int, *, final: bool) -> Outcome | None:
        """Apply the rules to the closed candles c[k0:] (v: their rolling VWAP). `final`: the
        candles end with the data, so a position still open closes as end_of_data (D21)."""
        if self.scheduled is not None:
            wait = decide_waiting(self.scheduled, c, k0)
            if wait.kind == "none":
                return None
            k = wait.index
            when = int(c.timestamp[k])
            if wait.kind == "cancel":  # the timeout, then the stop, beat a fill on the same candle
                return await self.cancel(price_at(v, c, k), when)
            self.evaluated_to = when + MINUTE_MS  # saved with the fill: exits start after its candle (D2)
            filled = await self.fill(price_at(v, c, k), when, wait.fill_price)  # D5: an `opened` event
            if filled.action == "cancelled":
                return filled
            k0 = k + 1  # D2: the fill candle's successors are checked
        row = self.pending
        assert row is not None
        exit_ = decide_exit(row, c, k0)
        end = exit_.index if exit_.reason is not None else len(c)
        if self.sink.observes_progress:
            if isinstance(v, WindowVwap):  # every value is read: all at once
                v = v.array()
            for k in range(k0, end):
                if np.isfinite(v[k]):
                    await self.progress(float(v[k]), int(c.timestamp[k]))
        if exit_.reason is None:
            if final and len(c):  # D21: candles ran out before the lifetime did
                return await self.close("end_of_data", price_at_end(c, v), int(c.timestamp[-1]))
            return None
        k = exit_.index
        when = int(c.timestamp[k])
        if exit_.reason == "time_expired":
            return await self.close("time_expired", price_at(v, c, k), when)
        level = row.price_take_profit if exit_.reason == "take_profit" else row.price_stop_loss
        return await self.close(exit_.reason, level, when, ambiguous=exit_.ambiguous)

    # --- asking the strategy -----------------------------------------------------------

    def may_ask(self, when: int) -> bool:
        """D16: one get_signal call per aligned interval bucket (and, for a prepared vectorised
        strategy, only when the bar it would read holds a signal: the ask could find nothing else)."""
        if self.stopped or when // self.interval_ms == self.last_bucket:
            return False
        return self.vector is None or self.vector.may_signal(when)

    async def prepare(self, start: int, end: int, frame_step: int) -> None:
        """Backtest over frames start..end every `frame_step` ms: a vectorised strategy computes
        its signals once, here."""
        if self.vector is not None:
            await self.vector.prepare(start, end, frame_step, self.interval_ms)

    def next_ask(self, when: int) -> int:
        """Idle after `when`'s bucket: where the loop asks next (the next bucket; a prepared
        vectorised strategy skips to the next frame where its arrays hold a signal)."""
        if self.vector is not None:
            return self.vector.next_ask(when, self.interval_ms)
        return (when // self.interval_ms + 1) * self.interval_ms

    async def _new_signal(self, value: Any, when: int, price: float) -> SignalRow | None:
        """What the strategy returned at `when`, as a checked row (None: refused by a risk profile,
        or invalid, which is reported)."""
        try:
            sig = to_signal(value)
            if self.sink.books and not await self.risk_ok(sig, price, when):
                return None
            return self._build(sig, when, price)
        except TimeoutError:  # (as from get_signal itself)
            await self._timed_out()
        except Exception as e:  # noqa: BLE001 - an invalid signal is a recoverable error
            await self.sink.error(e, self.strategy_name)
        return None

    async def _timed_out(self) -> None:
        await self.sink.error(TimeoutError(
            f"get_signal of strategy {self.strategy_name!r} for {self.symbol} took longer than "
            f"CC_MAX_SIGNAL_GENERATION_SECONDS={cfg.CC_MAX_SIGNAL_GENERATION_SECONDS}s; no signal"),
            self.strategy_name)

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


def _percents(row: SignalRow, price: float) -> tuple[float, float]:
    """How far `price` has come toward take-profit and toward stop-loss, in percent (0..100)."""
    long = row.position == "long"
    d = (price - row.price_open) if long else (row.price_open - price)
    if d > 0:
        return min(d / ((row.price_take_profit - row.price_open) if long
                        else (row.price_open - row.price_take_profit)) * 100, 100), 0.0
    if d < 0:
        return 0.0, min(-d / ((row.price_open - row.price_stop_loss) if long
                              else (row.price_stop_loss - row.price_open)) * 100, 100)
    return 0.0, 0.0


def triggered(row: SignalRow, price: float) -> bool:
    """A waiting order fills at `price`: a limit at or better than price_open, a stop once the
    price has moved through it (a long stop when it rises to price_open)."""
    long = row.position == "long"
    if row.order_type == "stop":
        return price >= row.price_open if long else price <= row.price_open
    return price <= row.price_open if long else price >= row.price_open


def past_stop(row: SignalRow, price: float) -> bool:
    """`price` is at or through the stop-loss of `row` (a long's at or below it)."""
    return price <= row.price_stop_loss if row.position == "long" else price >= row.price_stop_loss


def _with_quantity(row: SignalRow, quantity: float) -> SignalRow:
    """dataclasses.replace(row, quantity=quantity), written out (it runs once per trade)."""
    return SignalRow(id=row.id, position=row.position, price_open=row.price_open,
                     price_take_profit=row.price_take_profit, price_stop_loss=row.price_stop_loss,
                     minute_estimated_time=row.minute_estimated_time, note=row.note, symbol=row.symbol,
                     strategy_name=row.strategy_name, exchange_name=row.exchange_name,
                     scheduled_at=row.scheduled_at, pending_at=row.pending_at, is_scheduled=row.is_scheduled,
                     order_type=row.order_type, quantity=quantity)


def _as_signal(row: SignalRow) -> Signal:
    return Signal(position=row.position, price_take_profit=row.price_take_profit,
                  price_stop_loss=row.price_stop_loss, minute_estimated_time=row.minute_estimated_time,
                  price_open=row.price_open, note=row.note, id=row.id, order_type=row.order_type)


def _whole(minutes: object) -> Any:
    """An integral float lifetime as int (60.0 -> 60); anything else unchanged for validation."""
    return int(minutes) if isinstance(minutes, float) and minutes.is_integer() else minutes


async def _timed(value: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await value


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
