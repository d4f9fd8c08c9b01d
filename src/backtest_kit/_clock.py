"""Clocks for live trading: the system clock, and a virtual one for tests and paper trading."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time and real sleeps."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that moves only when slept: a live run over replayed candles takes no wall time.

    `end_ms` (optional) marks the end of the replay: Live stops once the clock passes it.
    """

    def __init__(self, start_ms: int, end_ms: int | None = None) -> None:
        self._now = int(start_ms)
        self.end_ms = end_ms

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self._now += max(0, int(round(seconds * 1000)))
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    def resume_after(self, when_ms: int, next_tick: Callable[[int], int]) -> None:
        """Continue a replay interrupted after the tick at `when_ms` (paper-trading restarts)."""
        self._now = max(self._now, next_tick(when_ms))

    def exhausted(self) -> bool:
        return self.end_ms is not None and self._now > self.end_ms
