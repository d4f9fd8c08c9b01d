"""Crash points: a live process that dies right after any one of its state writes resumes to
exactly what the uninterrupted run wrote — the same sequence of saved documents (so the same
journal, open position, cursor and throttle bucket), nothing lost, nothing written twice.

Each crash point is deterministic: the state backend is the real FileBackend behind a wrapper
that "kills" the process just after its k-th write has landed. In-process the kill is an
exception no library code catches, and the next "process" starts from `bk.reset()` as a new
one would; the last test does the same with real processes and SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange
from helpers.live_child import REPLAY_START, CrashAfterWrites, child_env, register_replay, run_replay
from helpers.market import flat_market

T0 = 1_704_067_200_000
M = 60_000
CHILD = Path(__file__).parent / "helpers" / "live_child.py"
SHORT_END = REPLAY_START + 400 * M  # ~20 writes, among them a close and a new open in one tick


class Crash(BaseException):
    """The process dies here: not an Exception, so no handler of the library sees it."""


def _crash() -> None:
    raise Crash


def _life(state_dir: Path, register: Callable[[Any], None], run: Callable[[], Awaitable[None]],
          kill_after: int, written: list[dict[str, Any]]) -> bool:
    """One process life on `state_dir`: a fresh library, everything registered again, the run
    until its end (False) or until it dies after its `kill_after`-th write (True)."""
    bk.reset()
    backend = CrashAfterWrites(bk.FileBackend(state_dir), kill_after, _crash,
                               lambda kind, key, value: written.append(json.loads(json.dumps(value))))
    register(backend)
    try:
        asyncio.run(run())
    except Crash:
        return True
    return False


def canonical(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents with each signal id (random per process) replaced by the order in which it
    first appears, so a position restored under its id stays the same trade and a reopened one
    would not."""
    names: dict[str, str] = {}

    def sig(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        return {**row, "id": names.setdefault(row["id"], f"#{len(names) + 1}")}

    out = []
    for d in docs:
        out.append({**d, "pending": sig(d["pending"]), "scheduled": sig(d["scheduled"]),
                    "partial": {names.setdefault(k, f"#{len(names) + 1}"): v for k, v in d["partial"].items()},
                    "journal": [{**e, "signal": sig(e["signal"])} for e in d["journal"]]})
    return out


def _multi_write_ticks(docs: list[dict[str, Any]]) -> list[int]:
    """The k whose next write was saved in the same tick (same cursor): crash points inside a tick."""
    return [k for k in range(1, len(docs)) if docs[k - 1]["cursor"] == docs[k]["cursor"]]


def _every_crash_point(tmp_path: Path, register: Callable[[Any], None],
                       run: Callable[[], Awaitable[None]]) -> tuple[list[dict[str, Any]], int]:
    """Kill after each write k of the reference, restart once; every run must write exactly the
    reference's documents. Returns the reference's documents and the number of crash points."""
    reference: list[dict[str, Any]] = []
    assert not _life(tmp_path / "reference", register, run, 0, reference)
    assert reference, "the run writes nothing"
    for k in range(1, len(reference) + 1):
        written: list[dict[str, Any]] = []
        state = tmp_path / f"kill-{k}"
        assert _life(state, register, run, k, written), k
        assert len(written) == k
        assert not _life(state, register, run, 0, written)  # the restart runs to the end
        assert canonical(written) == canonical(reference), f"killed after write {k}"
        last = written[-1]
        assert json.loads((state / "live" / f"{last['symbol']}_{last['strategy_name']}.json").read_text()) == last
    return reference, len(reference)


def test_a_kill_after_any_write_of_a_replay_resumes_to_the_same_writes(tmp_path):
    reference, points = _every_crash_point(tmp_path, register_replay, lambda: run_replay(end_ms=SHORT_END))
    journal = reference[-1]["journal"]
    assert points >= 15 and len(journal) >= 6  # the short replay really trades
    # It holds the crash point that used to lose a trade: a close and a new open in one tick (D3).
    same_tick = _multi_write_ticks(reference)
    assert same_tick and all(reference[k - 1]["pending"] is None and reference[k]["pending"] for k in same_tick)


def test_a_marketable_order_through_its_stop_is_cancelled_even_if_killed_in_between(tmp_path):
    """D22: at minute 20 (price 100) a long limit at 101 is marketable but its stop (100.4) is
    already passed: placed and cancelled in one tick, two writes. Killed between them, the
    restart must still cancel it at minute 20 at 100 — the market then jumps to 102, where the
    order would otherwise wait and end differently."""
    candles = flat_market(200, prices={i: 102.0 for i in range(20, 200)})
    asked: list[int] = []

    def get_signal(symbol: str, when: Any) -> dict[str, Any] | None:
        asked.append(int(when.timestamp() * 1000))
        if int(when.timestamp() * 1000) != T0 + 20 * M:
            return None
        return {"position": "long", "price_open": 101.0, "price_take_profit": 103.0,
                "price_stop_loss": 100.4, "minute_estimated_time": 60}

    def register(backend: Any) -> None:
        bk.use_persist_adapter(backend)
        bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(candles).get_candles)
        bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal)

    async def run() -> None:
        clock = bk.VirtualClock(T0 + 10 * M + 1, T0 + 80 * M)
        async for _ in bk.Live.run("BTC", strategy_name="s", exchange_name="ex", clock=clock):
            pass

    reference, points = _every_crash_point(tmp_path, register, run)
    assert points == 2 and _multi_write_ticks(reference) == [1]
    assert reference[0]["scheduled"]["price_open"] == 101.0 and reference[1]["scheduled"] is None
    [cancelled] = reference[-1]["journal"]
    assert (cancelled["action"], cancelled["close_timestamp"], cancelled["current_price"]) == (
        "cancelled", T0 + 20 * M, 100.0)


# --- the same with real processes and SIGKILL ---------------------------------------------------

def _child(state_dir: Path, log: Path, kill_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = child_env(BK_KILL_AFTER_WRITE=str(kill_after), BK_WRITE_LOG=str(log))
    return subprocess.run([sys.executable, str(CHILD), str(state_dir)], capture_output=True, text=True,
                          env=env, timeout=120)


def _logged(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["value"] for line in log.read_text().splitlines()]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_inside_a_tick_of_the_child_replay_resumes_to_the_same_writes(tmp_path):
    p = _child(tmp_path / "reference", tmp_path / "reference.jsonl")
    assert p.returncode == 0 and p.stdout.strip().endswith("done"), p.stderr
    assert f"backtest_kit {Path(bk.__file__).resolve()}" in p.stderr.splitlines()  # the code under test
    reference = _logged(tmp_path / "reference.jsonl")
    points = _multi_write_ticks(reference)
    assert points  # the replay has ticks that write twice (a close, then the next open)
    for k in points:
        state, log = tmp_path / f"kill-{k}", tmp_path / f"kill-{k}.jsonl"
        assert _child(state, log, kill_after=k).returncode == -9
        assert len(_logged(log)) == k
        p = _child(state, log)
        assert p.returncode == 0, p.stderr
        assert canonical(_logged(log)) == canonical(reference), f"SIGKILL after write {k}"
