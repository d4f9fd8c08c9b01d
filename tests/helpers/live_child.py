"""The crash tests' replay: paper-trading a synthetic market with the file backend, and the
child process that runs it.

Usage: python live_child.py STATE_DIR [START_MS]. Prints one line per event ("tick <action>")
and "done" at the end of the replay. A restart continues from the saved state; START_MS starts
the clock later, as if the process had been down until then.

BK_KILL_AFTER_WRITE=k makes the process SIGKILL itself right after its k-th state write has
landed (a deterministic crash point: the saved state is exactly that write's); BK_WRITE_LOG=path
appends every written document to that file (one JSON line each) before that. At the end of the
replay it prints "writes <n>" (the number of state writes it made) and "backtest_kit <path>" (the
package it ran) to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

T0 = 1_704_067_200_000
DAY = 86_400_000
MINUTE = 60_000
REPLAY_START = T0 + DAY // 2
REPLAY_END = T0 + DAY + DAY // 4
SYMBOL, STRATEGY = "BTCUSDT", "rule"
CANDLES = synthetic_candles(2 * 1440, start_ms=T0, seed=11)


class CrashAfterWrites:
    """A real backend whose process dies right after its k-th write has landed (k=0: never):
    `crash()` is a SIGKILL of this process in the child, an exception in-process. `record` sees
    every write before that."""

    def __init__(self, inner: Any, k: int, crash: Callable[[], None],
                 record: Callable[[str, str, Any], None] | None = None):
        self.inner, self.k, self.crash, self.record = inner, k, crash, record
        self.writes = 0

    def read(self, kind: str, key: str) -> Any:
        return self.inner.read(kind, key)

    def write(self, kind: str, key: str, value: Any) -> None:
        self.inner.write(kind, key, value)
        if self.record is not None:
            self.record(kind, key, value)
        self.writes += 1
        if self.writes == self.k:
            self.crash()

    def lock(self, kind: str, key: str) -> Any:
        return self.inner.lock(kind, key)

    def describe(self, kind: str, key: str) -> str:
        return str(self.inner.describe(kind, key))


def register_replay(backend: Any, risk_name: str | None = None) -> None:
    """What the process registers at start: the state backend, the replayed exchange, the rule
    (with `risk_name`, under a risk profile of that name: its positions are saved too)."""
    bk.use_persist_adapter(backend)
    bk.add_exchange(exchange_name="replay", get_candles=ArrayExchange(CANDLES).get_candles)
    if risk_name is not None:
        bk.add_risk(risk_name=risk_name, validations=[])
    bk.add_strategy(strategy_name=STRATEGY, interval="1m", risk_name=risk_name,
                    get_signal=rule_strategy(3, 12, 0.6, 0.5, 45, shorts=True, limit_offset_pct=0.05))


async def run_replay(start_ms: int | None = None, end_ms: int = REPLAY_END) -> None:
    """Paper-trade from `start_ms` (or where the saved state left off) to `end_ms`."""
    clock = bk.VirtualClock(start_ms or REPLAY_START, end_ms)
    async for _ in bk.Live.run(SYMBOL, strategy_name=STRATEGY, exchange_name="replay", clock=clock):
        pass


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: it imports the very backtest_kit this process runs
    (a relative PYTHONPATH such as `src` would miss it from a test's temporary directory and
    silently fall back to another installed copy)."""
    src = str(Path(bk.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _append_to(path: str) -> Callable[[str, str, Any], None]:
    def record(kind: str, key: str, value: Any) -> None:
        with open(path, "a") as f:
            f.write(json.dumps({"kind": kind, "key": key, "value": value}) + "\n")

    return record


def main(state_dir: str, start_ms: int | None = None) -> None:
    log = os.environ.get("BK_WRITE_LOG")
    backend = CrashAfterWrites(bk.FileBackend(state_dir), int(os.environ.get("BK_KILL_AFTER_WRITE", "0")),
                               _kill, _append_to(log) if log else None)
    register_replay(backend)
    bk.listen_signal_live(lambda r: print(f"tick {r.action}", flush=True))
    asyncio.run(run_replay(start_ms))
    print(f"writes {backend.writes}\nbacktest_kit {Path(bk.__file__).resolve()}", file=sys.stderr, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
