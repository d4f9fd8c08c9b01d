"""The event hub: topics, listeners and delivery; events.py builds the listen_* functions on it.

Listeners run in subscription order and are awaited (so each sees events in emission order);
a listener's exception goes to listen_error and never reaches the engine (D8).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from . import _logging, _state
from .errors import ValidationError

TOPICS = (
    "signal", "signal_live", "signal_backtest", "done_backtest", "done_live", "done_walker",
    "error", "exit", "backtest_progress", "walker", "walker_progress", "walker_complete",
    "performance", "partial_profit", "partial_loss", "risk", "validation",
    "sweep", "done_sweep", "walk_forward", "done_walk_forward",
)


class _Listener:
    __slots__ = ("fn", "predicate", "once", "active", "_locks", "_owner")

    def __init__(self, fn: Callable[[Any], Any], predicate: Callable[[Any], Any] | None = None,
                 once: bool = False) -> None:
        self.fn, self.predicate, self.once, self.active = fn, predicate, once, True
        self._locks: dict[int, asyncio.Lock] = {}  # per event loop (background runs may use threads)
        self._owner: asyncio.Task[Any] | None = None

    async def deliver(self, awaitable: Awaitable[object]) -> None:
        """Await an async listener's call, one call at a time and in emission order, even when
        several runs emit at once (re-entrant calls from inside the listener are not queued)."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            await awaitable
            return
        lock = self._locks.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
        async with lock:
            self._owner = task
            try:
                await awaitable
            finally:
                self._owner = None


class Hub:
    """Topic -> listeners. The one piece of module-level state besides the registry."""

    def __init__(self) -> None:
        self._topics: dict[str, list[_Listener]] = {t: [] for t in TOPICS}
        # Bumped whenever a listener comes or goes: a hot loop keeps its has() answers while it is unchanged.
        self.version = 0

    def has(self, topic: str) -> bool:
        return bool(self._topics[topic])

    def subscribe(self, topic: str, fn: Callable[[Any], Any], predicate: Callable[[Any], Any] | None = None,
                  once: bool = False) -> Callable[[], None]:
        if not callable(fn):
            raise ValidationError(f"listen_{topic}: listener must be callable, got {type(fn).__name__}")
        listener = _Listener(fn, predicate, once)
        self._topics[topic].append(listener)
        self.version += 1

        def unsubscribe() -> None:
            listener.active = False
            try:
                self._topics[topic].remove(listener)
            except ValueError:
                pass
            else:
                self.version += 1

        return unsubscribe

    async def emit(self, topic: str, payload: Any) -> None:
        listeners = self._topics[topic]
        if not listeners:
            return
        for listener in list(listeners):
            if not listener.active:
                continue
            try:
                if listener.predicate is not None and not listener.predicate(payload):
                    continue
                if listener.once:
                    listener.active = False
                    listeners.remove(listener)
                    self.version += 1
                result = listener.fn(payload)
                if inspect.isawaitable(result):
                    await listener.deliver(result)
            except Exception as e:  # noqa: BLE001 - D8: a listener never breaks the run
                await self.report(e, topic)

    async def report(self, error: BaseException, where: str = "") -> None:
        """Send a recoverable error to listen_error (errors of error listeners are only logged)."""
        _logging.outside_runs.report(where, error)
        if where == "error":
            return
        await self.emit("error", error)

    def clear(self) -> None:
        """Drop every listener."""
        for listeners in self._topics.values():
            for listener in listeners:
                listener.active = False
            listeners.clear()
        self.version += 1

    def __len__(self) -> int:
        return sum(len(listeners) for listeners in self._topics.values())


hub = _state.register("listeners", Hub())


async def call_reporting(fn: Callable[..., Any] | None, *args: Any, where: str = "",
                         on_error: Callable[[BaseException, str], Awaitable[None]] | None = None) -> None:
    """Call a user callback (sync or async); its exception goes to `on_error` (default:
    listen_error), never further."""
    if fn is None:
        return
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as e:  # noqa: BLE001 - D8/D19: user code never breaks the engine (unless strict)
        await (on_error or hub.report)(e, where)


def listen(topic: str) -> Callable[[Callable[[Any], Any]], Callable[[], None]]:
    """The listen_<topic> function: subscribe fn to every event of `topic`."""
    def subscribe(fn: Callable[[Any], Any]) -> Callable[[], None]:
        return hub.subscribe(topic, fn)
    subscribe.__name__ = f"listen_{topic}"
    subscribe.__doc__ = f"Call fn(event) for every {topic.replace('_', ' ')} event; returns unsubscribe()."
    return subscribe


def listen_once(topic: str) -> Callable[[Callable[[Any], bool], Callable[[Any], Any]], Callable[[], None]]:
    """The listen_<topic>_once function: fn runs for the first event matching predicate."""
    def subscribe(predicate: Callable[[Any], bool], fn: Callable[[Any], Any]) -> Callable[[], None]:
        return hub.subscribe(topic, fn, predicate, once=True)
    subscribe.__name__ = f"listen_{topic}_once"
    subscribe.__doc__ = f"Call fn once for the first {topic.replace('_', ' ')} event matching predicate."
    return subscribe
