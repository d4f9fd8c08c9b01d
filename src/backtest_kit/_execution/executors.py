"""Where trials run: "sequential" (one after another in this event loop), "process" (worker processes
forked once per sweep or walk, each inheriting the imported package and the candles already fetched)
or "ray" (schemas and candles put in Ray's object store once, installed once per worker).

All three run the same `run_trial` on the same candles, so they give the same results.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from .. import _registry as registry
from .. import _state
from .._config import cfg, get_config, set_config
from .._engine.machine import Machine
from .._exchange import ExchangeClient, adopt_series, cached_series
from .._time import MINUTE_MS
from ..errors import ValidationError
from .trial import TrialOutcome, TrialSpec, portable, run_trial

Before = Callable[[TrialSpec], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scope:
    """What the trials of one sweep, walk or walker share: symbol, exchange, frame and the schemas."""

    symbol: str
    exchange_name: str
    frame_name: str
    strategy_names: tuple[str, ...] = ()
    sweep_name: str | None = None


async def prewarm(scope: Scope) -> None:
    """Fetch the frame's 1m candles into this thread's cache, so forked or Ray workers start with them."""
    frame = registry.get_frame(scope.frame_name, "executor")
    exchange = ExchangeClient(registry.get_exchange(scope.exchange_name, "executor"), backtest=True)
    start = frame.start_ms - cfg.CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS
    await exchange.range(scope.symbol, "1m", start, frame.end_ms + MINUTE_MS)


class Executor:
    """Runs trial specs and yields their outcomes as they finish (sequential: in order)."""

    kind = "sequential"

    async def start(self, scope: Scope) -> None:
        return None

    async def map(self, specs: Sequence[TrialSpec], stopped: Callable[[], bool], before: Before | None = None,
                  attach: Callable[[Machine], None] = lambda _: None) -> AsyncIterator[TrialOutcome]:
        for spec in specs:
            if stopped():
                return
            if before is not None:
                await before(spec)
            yield await run_trial(spec, attach)

    async def close(self) -> None:
        return None


class _Pool(Executor):
    """Submits every spec at once and yields outcomes in completion order; a stop cancels what has not started."""

    async def _submit(self, spec: TrialSpec) -> TrialOutcome:
        raise NotImplementedError

    async def map(self, specs: Sequence[TrialSpec], stopped: Callable[[], bool], before: Before | None = None,
                  attach: Callable[[Machine], None] = lambda _: None) -> AsyncIterator[TrialOutcome]:
        pending: list[asyncio.Task[TrialOutcome]] = []
        for spec in specs:
            if before is not None:
                await before(spec)
            pending.append(asyncio.ensure_future(self._guarded(spec)))
        try:
            for next_done in asyncio.as_completed(pending):
                outcome = await next_done
                yield outcome
                if stopped():
                    return
        finally:
            for task in pending:
                task.cancel()

    async def _guarded(self, spec: TrialSpec) -> TrialOutcome:
        try:
            return await self._submit(spec)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a worker that died: the trial fails loudly, the others go on
            return TrialOutcome(spec.number, spec.params, None, f"{self.kind} worker failed: {type(e).__name__}: {e}",
                                None)


def _process_init() -> None:
    _state.clear("listeners")  # listeners live in the parent; a worker's events stay in the worker


def _process_trial(spec: TrialSpec) -> TrialOutcome:
    return portable(asyncio.run(run_trial(spec)))


class ProcessExecutor(_Pool):
    """Long-lived worker processes forked after the candles are fetched: each imports nothing and
    fetches nothing that the parent already had (copy-on-write pages)."""

    kind = "process"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    async def start(self, scope: Scope) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ValidationError("executor='process' needs the fork start method (Linux, macOS); "
                                  "use executor='ray' or 'sequential' here")
        await prewarm(scope)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_process_init)

    async def _submit(self, spec: TrialSpec) -> TrialOutcome:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, _process_trial, spec)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True, slots=True)
class _Shipment:
    """What a Ray worker installs once: schemas, configuration and the candles fetched so far."""

    key: str
    schemas: dict[str, dict[str, Any]]
    config: dict[str, Any]
    exchange_name: str
    series: dict[tuple[str, str], Any]


_installed: dict[str, str] = _state.register("ray_shipment", {})


def _install(payload: bytes) -> None:
    from ray import cloudpickle  # Ray's own copy: the one its workers have

    shipment: _Shipment = cloudpickle.loads(payload)
    _state.reset_all()
    registry.adopt_schemas(shipment.schemas)
    set_config(**shipment.config)
    adopt_series(registry.get_exchange(shipment.exchange_name), shipment.series)
    _installed["key"] = shipment.key


def _ray_trial(key: str, shipment: list[Any], spec: TrialSpec) -> TrialOutcome:
    # The shipment's ref comes in a list, so Ray does not fetch it for every task: only a worker
    # that has not installed it yet does, once.
    if _installed.get("key") != key:
        import ray

        _install(ray.get(shipment[0]))
    return portable(asyncio.run(run_trial(spec)))


def _user_modules(value: Any, seen: set[int], out: set[str]) -> None:
    """Modules of user functions reachable from the schemas that a Ray worker may not import:
    they are pickled by value (test files, notebooks, scripts), the rest by reference."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if callable(value) and hasattr(value, "__module__"):
        module = sys.modules.get(getattr(value, "__module__", "") or "")
        path = getattr(module, "__file__", None) or ""
        ours = module is not None and (module.__name__ == "backtest_kit" or module.__name__.startswith("backtest_kit."))
        if module is not None and module.__name__ not in ("__main__", "builtins") and not ours \
                and "-packages" not in path and path:
            out.add(module.__name__)
        for cell in getattr(value, "__closure__", None) or ():
            try:
                _user_modules(cell.cell_contents, seen, out)
            except ValueError:  # an empty cell
                pass
    if is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            _user_modules(getattr(value, f.name), seen, out)
    elif isinstance(value, dict):
        for v in value.values():
            _user_modules(v, seen, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _user_modules(v, seen, out)


class RayExecutor(_Pool):
    """Ray tasks: `ray.init()` on this machine unless Ray is already initialised (a cluster:
    `ray.init(address=...)` first, or RAY_ADDRESS). Candles travel once, through the object store."""

    kind = "ray"

    def __init__(self) -> None:
        self._remote: Any = None
        self._ref: Any = None
        self._key = uuid.uuid4().hex

    async def start(self, scope: Scope) -> None:
        try:
            import ray
            from ray import cloudpickle
        except ImportError:
            raise ValidationError("executor='ray' needs Ray: pip install 'backtest-kit[ray]'") from None
        await prewarm(scope)
        schemas = registry.schemas_for(scope.exchange_name, scope.frame_name, scope.strategy_names, scope.sweep_name)
        exchange = registry.get_exchange(scope.exchange_name)
        shipment = _Shipment(self._key, schemas, get_config(), scope.exchange_name, cached_series(exchange))
        modules: set[str] = set()
        _user_modules(schemas, set(), modules)
        for name in modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        try:
            payload = cloudpickle.dumps(shipment)
        except Exception as e:  # noqa: BLE001 - named, with what to do
            raise ValidationError(f"executor='ray': the schemas cannot be sent to Ray workers ({type(e).__name__}: "
                                  f"{e}); give the exchange a CandleStore or use executor='process'") from None
        finally:
            for name in modules:
                cloudpickle.unregister_pickle_by_value(sys.modules[name])
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        self._ref = ray.put(payload)
        self._remote = ray.remote(_ray_trial)

    async def _submit(self, spec: TrialSpec) -> TrialOutcome:
        ref = self._remote.remote(self._key, [self._ref], spec)
        outcome: TrialOutcome = await asyncio.wrap_future(ref.future())
        return outcome

    async def close(self) -> None:
        self._ref = None


def executor(kind: str) -> Executor:
    """A fresh executor of a schema's kind ("sequential", "process", "ray")."""
    if kind == "process":
        return ProcessExecutor()
    if kind == "ray":
        return RayExecutor()
    return Executor()
