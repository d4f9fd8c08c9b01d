"""What Backtest, Live and Walker share: memoised instances with a single-run guard, background
runs with or without a running event loop, stop, list and report dumps."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .. import _state
from .._hub import hub
from .._registry import canonical_symbol
from .._report.source import dump_report
from ..errors import BacktestKitError, ValidationError
from ..events import DoneEvent


@dataclass(slots=True, frozen=True)
class InstanceStatus:
    id: str
    symbol: str
    strategy_name: str
    status: str  # "idle" | "running" | "done"

    @property
    def name(self) -> str:
        """The strategy name (Backtest, Live) or the walker name (Walker)."""
        return self.strategy_name

    @property
    def walker_name(self) -> str:
        return self.strategy_name


class Stoppable(Protocol):
    """What a stop() reaches during a run: the machine, which then opens no new signal."""

    stopped: bool


class Instance:
    """One (symbol, name) of an execution class: its id and run flags."""

    def __init__(self, symbol: str, name: str):
        self.id = uuid.uuid4().hex
        self.symbol = symbol
        self.name = name
        self.stopped = False
        self.running = False
        self.done = False
        self.target: Stoppable | None = None  # what stop() also reaches during a run

    @property
    def status(self) -> str:
        if self.running:
            return "running"
        return "done" if self.done else "idle"

    def begin(self, kind: str) -> None:
        """Start a run: fresh flags (a failed run may be started again, D9)."""
        if self.running:
            raise BacktestKitError(f"{kind}: {self.name} on {self.symbol} is already running "
                                   f"(instance {self.id}); stop it or wait for it to finish")
        self.running = True
        self.stopped = False
        self.done = False

    def end(self) -> None:
        self.running = False
        self.done = True
        self.target = None

    def attach(self, target: Stoppable) -> None:
        """During a run, stop() also stops `target`; a stop that came first applies at once."""
        self.target = target
        if self.stopped:
            target.stopped = True

    def stop(self) -> None:
        self.stopped = True
        if self.target is not None:
            self.target.stopped = True


I = TypeVar("I", bound=Instance)
T = TypeVar("T")


class Registry(Generic[I]):
    """Memoised instances of one execution class, keyed by (symbol, name)."""

    def __init__(self, factory: Callable[[str, str], I]) -> None:
        self._factory = factory
        self._instances: dict[tuple[str, str], I] = {}

    def get(self, symbol: str, name: str) -> I:
        key = (canonical_symbol(symbol), name)  # "BTCUSDT" and "BTC/USDT" on a ccxt exchange: one instance
        inst = self._instances.get(key)
        if inst is None:
            inst = self._instances[key] = self._factory(symbol, name)
        return inst

    def find(self, symbol: str, name: str) -> I | None:
        """The instance if it exists (never creates one)."""
        return self._instances.get((canonical_symbol(symbol), name))

    def all(self) -> list[I]:
        return list(self._instances.values())

    def statuses(self) -> list[InstanceStatus]:
        return [InstanceStatus(i.id, i.symbol, i.name, i.status) for i in self._instances.values()]

    def clear(self) -> None:
        self._instances.clear()

    def __len__(self) -> int:
        return len(self._instances)


class Facade(Generic[I]):
    """The shape of bk.Backtest / bk.Live / bk.Walker: run -> single-run guard, background,
    stop, list, dump. Subclasses provide the run generator and the report text."""

    kind = ""        # "Backtest": names calls in messages
    done_topic = ""  # "done_backtest"
    folder = ""      # default dump folder under ./dump

    def __init__(self, factory: Callable[[str, str], I]) -> None:
        self._registry: Registry[I] = _state.register(f"{self.kind.lower()}_instances", Registry(factory))

    def __repr__(self) -> str:
        return f"<backtest_kit.{self.kind}>"

    def _guarded(self, inst: I, work: Callable[[], AsyncIterator[Any]], begun: bool = False) -> AsyncIterator[Any]:
        """`work()` under the instance's single-run guard."""

        async def run() -> AsyncIterator[Any]:
            if not begun:
                inst.begin(f"{self.kind}.run")
            try:
                async for item in work():
                    yield item
            finally:
                inst.end()

        return run()

    def _background(self, inst: I, work: Callable[[], AsyncIterator[Any]], done: DoneEvent) -> BackgroundRun:
        """Consume `work()` in the background; the done topic fires exactly once at the end."""
        inst.begin(f"{self.kind}.background")  # marked running now: a second call is refused at once

        async def consume() -> None:
            try:
                async for _ in self._guarded(inst, work, begun=True):
                    pass
            finally:
                await hub.emit(self.done_topic, done)

        return start_background(consume, inst.stop)

    def _stop(self, symbol: str, name: str) -> None:
        self._registry.get(symbol, name).stop()

    async def list(self) -> list[InstanceStatus]:
        return self._registry.statuses()

    def _results(self, symbol: str, name: str, noun: str) -> Any:
        """The `data` of the (symbol, name) instance, or an error saying to run it first."""
        data = getattr(self._registry.find(canonical_symbol(symbol), name), "data", None)
        if data is None:
            raise BacktestKitError(f"{self.kind}.get_data: no results for {noun} {name!r} on {symbol}; "
                                   f"run {self.kind}.run or {self.kind}.background first")
        return data

    async def _dump(self, text: str, path: str | None, name: str, ext: str = ".md") -> str:
        return await dump_report(path, self.folder, name, text, ext)


def check_freq(freq: str, method: str) -> None:
    """The sampling of an equity series: "1m", "1h" or "1d"."""
    if freq not in ("1m", "1h", "1d"):
        raise ValidationError(f"{method}: freq must be '1m', '1h' or '1d', got {freq!r}")


def check_format(format: str, method: str) -> str:
    """The report format of a dump: ".md" or ".html"."""
    if format not in ("md", "html"):
        raise ValidationError(f"{method}: format must be 'md' or 'html', got {format!r}")
    return "." + format


class BackgroundRun:
    """What background() returns: call it to cancel (a graceful stop); `wait()` blocks until a
    run started from synchronous code ends; `task` is the asyncio task inside an event loop."""

    def __init__(self, on_cancel: Callable[[], None]):
        self._on_cancel = on_cancel
        self.task: asyncio.Task[None] | None = None
        self.thread: threading.Thread | None = None

    def __call__(self) -> None:
        self._on_cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the background thread (sync callers); True when the run has ended."""
        if self.thread is None:
            raise BacktestKitError("wait() is for runs started without an event loop; await .task instead")
        self.thread.join(timeout)
        return not self.thread.is_alive()


class _Background:
    """Strong references to background tasks and threads, so none is collected mid-run."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.threads: list[threading.Thread] = []

    def clear(self) -> None:
        """Forget finished threads and tasks (running ones keep running)."""
        self.threads = [t for t in self.threads if t.is_alive()]
        self.tasks = {t for t in self.tasks if not t.done()}

    def __len__(self) -> int:
        return len(self.threads) + len(self.tasks)


_background = _state.register("background_runs", _Background())


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
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = run.task = loop.create_task(guarded())
        _background.tasks.add(task)
        task.add_done_callback(_background.tasks.discard)
    else:
        thread = run.thread = threading.Thread(target=lambda: asyncio.run(guarded()), daemon=True,
                                               name="backtest-kit-background")
        thread.start()
        _background.threads.append(thread)
    return run


def wait_background_threads(timeout: float | None = None) -> None:
    """Join background threads started without an event loop (useful in scripts and tests)."""
    for t in list(_background.threads):
        t.join(timeout)
        if not t.is_alive():
            _background.threads.remove(t)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from plain code, or from inside a running loop (a notebook
    cell) on a helper thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_coro(make))
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(_coro(make))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=work, name="backtest-kit-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _coro(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
