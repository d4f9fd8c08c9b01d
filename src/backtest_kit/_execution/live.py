"""Live: tick the strategy on the clock, persisting state before every event, so a killed
process resumes exactly where it was."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .. import _registry as registry
from .._clock import Clock, SystemClock, VirtualClock
from .._config import cfg
from .._engine import risk
from .._engine.machine import Machine
from .._engine.runs import runs
from .._engine.sink import Sink
from .._engine.stats import LiveStatistics, backtest_statistics
from .._exchange import CandleFetchError, ExchangeClient
from .._persist import LiveStore, PersistBackend, current_backend, describe, read_record, state_key
from .._report.live import render_live_report
from .._report.table import Column
from .._restore import risk_positions
from .._time import MINUTE_MS
from ..errors import PersistError
from ..events import CancelledResult, ClosedResult, DoneEvent, OpenedResult, Outcome, PnL, SignalRow
from .backtest import Timer
from .base import BackgroundRun, Facade, Instance


def live_book(risk_name: str, backend: PersistBackend) -> risk.RiskBook:
    """The live risk book, loaded from the backend the first time this process uses it."""
    b = risk.book(risk_name, False)
    if b.store is None:
        saved = read_record(backend, "risk", risk_name)
        b.positions.update(risk_positions(saved, describe(backend, "risk", risk_name)))
        b.store = backend
    return b


def next_tick(when: int) -> int:
    """D19: ticks stay on the minute grid (default CC_TICK_TTL_MS = 1 minute + 1 ms)."""
    ttl = cfg.CC_TICK_TTL_MS
    return when - when % MINUTE_MS + ttl if ttl >= MINUTE_MS else when + ttl


def _same_tick(when: int) -> int:
    return when


def _from_journal(entry: dict[str, Any], strategy_name: str, exchange_name: str, symbol: str) -> Outcome:
    row = SignalRow(**entry["signal"])
    base = dict(signal=row, current_price=entry["current_price"], symbol=symbol,
                strategy_name=strategy_name, exchange_name=exchange_name, backtest=False)
    if entry["action"] == "closed":
        return ClosedResult(**base, close_reason=entry["close_reason"],
                            close_timestamp=entry["close_timestamp"], pnl=PnL(**entry["pnl"]))
    return CancelledResult(**base, close_timestamp=entry["close_timestamp"])


def check_fingerprint(saved: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    """A saved state started with other settings must not be resumed silently (it may hold a
    position opened on other data or parameters): PersistError naming each difference."""
    old = saved.get("fingerprint")
    if not isinstance(old, Mapping):
        return  # saved before fingerprints were recorded: adopt this run's
    diffs = [f"{k}: saved {old.get(k)!r}, now {expected.get(k)!r}" for k in sorted({*old, *expected})
             if old.get(k) != expected.get(k)]
    if diffs:
        raise PersistError(f"saved live state {where} was started with other settings ({'; '.join(diffs)}); "
                           "it may hold an open position. Resume with the original settings, or start a new "
                           "state (CLI: --fresh; Python: move the state away)")


async def run_live(inst: Instance, symbol: str, strategy_name: str, exchange_name: str,
                   clock: Clock, fingerprint: Mapping[str, Any] | None = None, strict: bool = False
                   ) -> AsyncIterator[OpenedResult | Outcome]:
    """The live generator: yields opened, closed and cancelled results until stopped."""
    strategy = registry.get_strategy(strategy_name, "Live.run")
    exchange = ExchangeClient(registry.get_exchange(exchange_name, "Live.run"), backtest=False,
                              sleep=clock.sleep, now_ms=clock.now_ms)
    backend = current_backend("live")
    lock = backend.lock("live", state_key(symbol, strategy_name)) if hasattr(backend, "lock") else None
    try:
        expected = {"strategy_name": strategy_name, "interval": strategy.interval, "exchange_name": exchange_name,
                    **(fingerprint or {})}
        async for result in _live_loop(inst, symbol, strategy_name, exchange_name, clock, backend, strategy,
                                       exchange, expected, strict):
            yield result
    finally:
        if lock is not None:
            lock.close()


async def _live_loop(inst: Instance, symbol: str, strategy_name: str, exchange_name: str, clock: Clock,
                     backend: PersistBackend, strategy: Any, exchange: ExchangeClient, fingerprint: dict[str, Any],
                     strict: bool = False
                     ) -> AsyncIterator[OpenedResult | Outcome]:
    store = LiveStore(backend, symbol, strategy_name)
    books = [live_book(name, current_backend("risk")) for name in strategy.risk_names]
    run = runs.start("live", symbol, strategy_name)
    sink = Sink(strategy, symbol, backtest=False, run=run, books=books, persist=store, strict=strict)
    state = Machine(strategy, exchange, symbol, sink)
    state.fingerprint = fingerprint
    saved = store.load()
    if saved:
        check_fingerprint(saved, fingerprint, store.describe())
        state.restore(saved, store.describe())
        # Trades closed before a restart still count in this run's statistics.
        for entry in store.journal:
            outcome = _from_journal(entry, strategy_name, exchange_name, symbol)
            run.restore(outcome)
            if outcome.action == "closed":
                sink.account.closed(outcome)  # the equity later trades are sized from
        if isinstance(clock, VirtualClock) and state.cursor is not None:
            # Paper trading continues its replay AT the tick the state was saved in, not after it:
            # that tick may have been killed before it finished (a close is followed by the D3 ask
            # at the same minute; a D22 order by its cancel). Redoing it only does what is left:
            # what it saved is restored state, so a restored position is watched, never reopened.
            clock.resume_after(state.cursor, _same_tick)
        await state.announce_restored(clock.now_ms())
    inst.attach(state)
    timer = Timer(sink, exchange_name)
    while True:
        if isinstance(clock, VirtualClock) and clock.exhausted():
            break  # end of the replay: state stays saved, like a process that exits
        when = clock.now_ms()
        started = time.perf_counter()
        # Saved with every transition: a restarted paper replay resumes at the tick of the last
        # one (idle ticks after it are replayed, which is harmless for a deterministic strategy).
        state.cursor = when
        seen = len(run.events)
        at = when // MINUTE_MS * MINUTE_MS
        try:
            # D23: a tick is the state at the minute it follows: the candles before it have
            # closed, as at a backtest frame of the same minute (events carry that minute).
            result = await state.tick(at)
            if (result.action == "closed" or result.action == "cancelled") and \
                    result.close_timestamp + MINUTE_MS <= at and not state.stopped:
                # D3, as the backtest resumes: flat again since this minute, so ask for a signal now.
                await state.tick(at)
        except PersistError:
            raise  # a lost state write stops the run: memory must not run ahead of the saved state
        except CandleFetchError as e:
            if e.permanent:  # an unknown symbol, a refused key, ...: asking again cannot help
                raise
            # An outage: reported and counted; the next tick asks again, and the candles it
            # missed are evaluated then (the machine's evaluated_to did not move).
            await sink.error(e, f"Live {symbol} {strategy_name}")
        except Exception as e:  # noqa: BLE001 - a failed tick is reported; the loop goes on
            await sink.error(e, f"Live {symbol} {strategy_name}")
        else:
            await timer.sample("live_tick", started)
            # One tick may fill and close (candles replayed after a restart): yield each in order.
            for result in run.events[seen:]:
                if result.action == "opened" or result.action == "closed" or result.action == "cancelled":
                    yield result
            if state.stopped and state.pending is None and state.scheduled is None:
                break  # D18: a stop waits for the open position to close
        await clock.sleep((next_tick(when) - clock.now_ms()) / 1000)


class LiveUtils(Facade[Instance]):
    """`bk.Live`: run strategies on the clock with crash-safe state."""

    kind, done_topic, folder = "Live", "done_live", "live"

    def __init__(self) -> None:
        super().__init__(Instance)

    def _validate(self, symbol: str, strategy_name: str, exchange_name: str, source: str) -> None:
        registry.validate_symbol(symbol, source)
        registry.validate_strategy_refs(strategy_name, source)
        registry.get_exchange(exchange_name, source)

    def run(self, symbol: str, *, strategy_name: str, exchange_name: str, clock: Clock | None = None,
            fingerprint: Mapping[str, Any] | None = None, strict: bool = False
            ) -> AsyncIterator[OpenedResult | Outcome]:
        """Trade `strategy_name` on `symbol` until stopped; `clock` defaults to the system clock.
        A failed state write raises PersistError; `strict=True` also raises the first error of
        the strategy or the exchange instead of reporting it.

        The saved state records what it was started with (strategy, interval, exchange, and
        the JSON-able `fingerprint` you add, e.g. the data file and parameters); resuming it
        with anything else raises PersistError naming the difference.
        """
        self._validate(symbol, strategy_name, exchange_name, "Live.run")
        symbol = registry.canonical_symbol(symbol, exchange_name)
        inst = self._registry.get(symbol, strategy_name)
        return self._guarded(inst, lambda: run_live(inst, symbol, strategy_name, exchange_name,
                                                    clock or SystemClock(), fingerprint, strict))

    def background(self, symbol: str, *, strategy_name: str, exchange_name: str, clock: Clock | None = None,
                   fingerprint: Mapping[str, Any] | None = None, strict: bool = False) -> BackgroundRun:
        """Trade without yielding; returns cancel() (a graceful stop) at once."""
        self._validate(symbol, strategy_name, exchange_name, "Live.background")
        symbol = registry.canonical_symbol(symbol, exchange_name)
        inst = self._registry.get(symbol, strategy_name)
        return self._background(
            inst, lambda: run_live(inst, symbol, strategy_name, exchange_name, clock or SystemClock(), fingerprint,
                                   strict),
            DoneEvent(exchange_name, strategy_name, False, symbol))

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """No new signals; a waiting order is cancelled; the open position runs to its close."""
        registry.validate_strategy_refs(strategy_name, "Live.stop")
        self._stop(symbol, strategy_name)

    def _stats(self, symbol: str, strategy_name: str, method: str) -> LiveStatistics:
        registry.validate_strategy_refs(strategy_name, f"Live.{method}")
        self._registry.get(symbol, strategy_name)  # get_data memoises the instance, as 1.5.27 does
        run = runs.get("live", symbol, strategy_name)
        closed = run.closed if run is not None else []
        s = backtest_statistics(closed, errors=run.errors if run is not None else ())
        events = [e for e in (run.events if run is not None else [])
                  if e.action in ("opened", "scheduled", "closed", "cancelled")]
        return LiveStatistics(**{f: getattr(s, f) for f in s.__dataclass_fields__},
                              event_list=events, total_events=len(events), total_closed=len(closed))

    async def get_data(self, symbol: str, strategy_name: str) -> LiveStatistics:
        return self._stats(symbol, strategy_name, "get_data")

    async def get_report(self, symbol: str, strategy_name: str, columns: Sequence[Column] | None = None) -> str:
        return await render_live_report(symbol, strategy_name, self._stats(symbol, strategy_name, "get_report"),
                                        columns)

    async def dump(self, symbol: str, strategy_name: str, path: str | None = None,
                   columns: Sequence[Column] | None = None) -> str:
        """Write the report; `path` is a directory (default ./dump/live) or a .md file."""
        return await self._dump(await self.get_report(symbol, strategy_name, columns), path, strategy_name)


Live = LiveUtils()
