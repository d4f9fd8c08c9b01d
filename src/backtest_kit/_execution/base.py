"""Instance/Utils machinery shared by Backtest, Live and Walker: memoised instances, a
single-run task per instance, and background runs with or without a running event loop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from ..errors import BacktestKitError
from .._hub import hub
from .._engine.machine import PartialEvent
from .._engine.risk import RiskEvent


@dataclass(slots=True)
class InstanceStatus:
    id: str
    symbol: str
    strategy_name: str
    status: str  # "idle" | "running" | "done"

    @property
    def name(self) -> str:
        """The strategy name (Backtest, Live) or the walker name (Walker)."""
        return self.strategy_name

    walker_name = name


class Instance:
    """One (symbol, name) of an execution class, with its own results and run flags."""

    def __init__(self, symbol: str, name: str):
        self.id = uuid.uuid4().hex
        self.symbol = symbol
        self.name = name
        self._is_stopped = False
        self._is_done = False
        self._running = False
        self.state = None           # the StrategyState of the current / last run
        self.results: list = []     # closed and cancelled results of the last run
        self.events: list = []      # every non-idle tick result of the last run, in order
        self.perf: list = []        # PerformanceEvent samples of the last run
        self.rejections: list = []  # RiskEvents of the last run
        self.partials: list = []    # PartialEvents of the last run

    @property
    def status(self) -> str:
        if self._running:
            return "running"
        return "done" if self._is_done else "idle"

    def begin(self) -> None:
        """Start a run: fresh flags and records (a failed run may be started again, D9)."""
        if self._running:
            raise BacktestKitError(f"{self.name} on {self.symbol} is already running "
                                   f"(instance {self.id}); stop it or wait for it to finish")
        self._running = True
        self._is_stopped = False
        self._is_done = False
        self.results = []
        self.events = []
        self.perf = []
        self.rejections = []
        self.partials = []

    def end(self) -> None:
        self._running = False
        self._is_done = True

    def record(self, result) -> None:
        if isinstance(result, RiskEvent):
            self.rejections.append(result)
            return
        if isinstance(result, PartialEvent):
            self.partials.append(result)
            return
        if result.action == "idle":
            return  # idle ticks are observable through listeners, not worth keeping
        self.events.append(result)
        if result.action in ("closed", "cancelled"):
            self.results.append(result)

    @property
    def closed(self) -> list:
        return [r for r in self.results if r.action == "closed"]

    def stop(self) -> None:
        self._is_stopped = True
        if self.state is not None:
            self.state.stopped = True


class Registry:
    """Memoised instances of one execution class, keyed by (symbol, name)."""

    def __init__(self, factory: Callable[[str, str], "Instance"] = None) -> None:
        self._factory = factory or Instance
        self._instances: dict[tuple[str, str], Instance] = {}

    def get(self, symbol: str, name: str) -> Instance:
        key = (symbol, name)
        inst = self._instances.get(key)
        if inst is None:
            inst = self._instances[key] = self._factory(symbol, name)
        return inst

    def statuses(self) -> list[InstanceStatus]:
        return [InstanceStatus(i.id, i.symbol, i.name, i.status) for i in self._instances.values()]

    def clear(self) -> None:
        self._instances.clear()


@dataclass(slots=True)
class DoneEvent:
    """Payload of listen_done_*: a background run finished (walkers: strategy_name = walker)."""

    exchange_name: str
    strategy_name: str
    backtest: bool
    symbol: str


def run_in_background(inst: "Instance", kind: str, consume: Callable[[], Any], done_topic: str,
                      done: DoneEvent) -> Callable[[], None]:
    """Start consuming `consume()` in the background; `done_topic` fires exactly once at the end."""
    if inst._running:
        raise BacktestKitError(f"{kind}.background is already running for symbol={inst.symbol} "
                               f"name={inst.name} (instance {inst.id}); stop it or wait for done")
    inst.begin()  # marked running now, so a second background() call is refused at once

    async def work() -> None:
        try:
            async for _ in consume():
                pass
        finally:
            inst.end()
            await hub.emit(done_topic, done)

    return start_background(work, inst.stop)


class BackgroundRun:
    """What background() returns: call it to cancel (a graceful stop); `wait()` blocks until a
    run started from synchronous code ends; `task` is the asyncio task inside an event loop."""

    def __init__(self, on_cancel: Callable[[], None]):
        self._on_cancel = on_cancel
        self.task: Optional[asyncio.Task] = None
        self.thread: Optional[threading.Thread] = None

    def __call__(self) -> None:
        self._on_cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the background thread (sync callers); True when the run has ended."""
        if self.thread is None:
            raise RuntimeError("wait() is for runs started without an event loop; await .task instead")
        self.thread.join(timeout)
        return not self.thread.is_alive()


def start_background(work: Callable[[], Awaitable[None]], on_cancel: Callable[[], None]) -> BackgroundRun:
    """Run `work()` in the running loop, or in a thread with its own loop when there is none.

    Errors go to listen_exit. Returns the cancel() callable (see BackgroundRun).
    """

    async def guarded() -> None:
        try:
            await work()
        except Exception as e:  # noqa: BLE001 - a background failure is reported, never lost
            await hub.emit("exit", e)

    run = BackgroundRun(on_cancel)
    try:
        loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        run.task = loop.create_task(guarded())
        _BACKGROUND.add(run.task)
        run.task.add_done_callback(_BACKGROUND.discard)
    else:
        run.thread = threading.Thread(target=lambda: asyncio.run(guarded()), daemon=True,
                                      name="backtest-kit-background")
        run.thread.start()
        _THREADS.append(run.thread)
    return run


# Strong references so background tasks are not garbage-collected mid-run.
_BACKGROUND: set = set()
_THREADS: list = []


def wait_background_threads(timeout: float | None = None) -> None:
    """Join background threads started without an event loop (useful in scripts and tests)."""
    for t in list(_THREADS):
        t.join(timeout)
        if not t.is_alive():
            _THREADS.remove(t)
