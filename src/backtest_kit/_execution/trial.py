"""One trial: a registered strategy, or a sweep's factory at some parameters, backtested on one symbol
over its frame or a window of it, in whichever process runs it (see executors.py)."""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import _registry as registry
from .._engine.machine import Machine
from .._engine.runs import Run, RunError
from .._engine.stats import BacktestStatistics
from .._exchange import ExchangeClient
from .._schema import StrategySchema
from .._space import label
from ..errors import BacktestKitError
from .backtest import open_loop, statistics_of


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What to run: `strategy_name` (a registered strategy) or `sweep_name` with `params`; `window` is
    the first and last frame time (ms) inside the frame, None for all of it."""

    number: int
    symbol: str
    exchange_name: str
    frame_name: str
    strategy_name: str | None = None
    sweep_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    window: tuple[int, int] | None = None


@dataclass(slots=True)
class TrialOutcome:
    """What a trial gives back: statistics, or the traceback of its failure; the run (its trades and
    events) without its candle source, which the caller re-attaches."""

    number: int
    params: dict[str, Any]
    stats: BacktestStatistics | None
    error: str | None
    run: Run | None
    exception: BaseException | None = None


def trial_strategy(spec: TrialSpec) -> StrategySchema:
    """The strategy schema a spec runs: the registered one, or the sweep's factory called with params."""
    if spec.strategy_name is not None:
        return registry.get_strategy(spec.strategy_name, "Walker.run")
    if spec.sweep_name is None:
        raise BacktestKitError("trial: a spec names a strategy or a sweep")
    sweep = registry.get_sweep(spec.sweep_name, "Sweep.run")
    get_signal = sweep.factory(**spec.params)
    return StrategySchema(f"{sweep.sweep_name}[{label(spec.params)}]", sweep.interval, get_signal)


async def run_trial(spec: TrialSpec, attach: Callable[[Machine], None] = lambda _: None) -> TrialOutcome:
    """Backtest one spec to its end. Errors of the strategy or the exchange are counted in its
    statistics (the run goes on); a factory or setup failure makes a failed trial, never a raise."""
    try:
        strategy = trial_strategy(spec)
        exchange = ExchangeClient(registry.get_exchange(spec.exchange_name, "trial"), backtest=True)
        run = Run("backtest", spec.symbol, strategy.strategy_name)
        loop = await open_loop(spec.symbol, strategy.strategy_name, exchange, spec.frame_name, attach,
                               strategy=strategy, window=spec.window, run=run)
        started = time.perf_counter()
        while not loop.done:
            await loop.step()
        await loop.finish()
        await loop.timer.sample("backtest_total", started)
        stats = await statistics_of(run, f"trial {strategy.strategy_name}")
        run.release()
    except Exception as e:  # noqa: BLE001 - a failed trial is reported with its traceback; the sweep goes on
        return TrialOutcome(spec.number, spec.params, None, traceback.format_exc(), None, e)
    return TrialOutcome(spec.number, spec.params, stats, None, run)


def portable(outcome: TrialOutcome) -> TrialOutcome:
    """The outcome as another process can receive it: the run without its candle source, errors that
    cannot be pickled replaced by their text."""
    if outcome.exception is not None and not _picklable(outcome.exception):
        outcome = replace(outcome, exception=BacktestKitError(f"{type(outcome.exception).__name__}: "
                                                              f"{outcome.exception}"))
    run = outcome.run
    if run is None:
        return outcome
    errors = [e if _picklable(e.error) else RunError(e.where, BacktestKitError(f"{type(e.error).__name__}: {e.error}"))
              for e in run.errors]
    # The statistics and the run hold only the library's own payloads (a user's note is kept as text),
    # so they pickle as they are: testing that here would pickle them twice.
    return replace(outcome, run=replace(run, errors=errors, mark_source=None, _candles=None))


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - any failure means "not shippable"
        return False
    return True
