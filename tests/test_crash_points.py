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


Written = list[tuple[str, Any]]  # (kind, document) of each state write, in order


def _life(state_dir: Path, register: Callable[[Any], None], run: Callable[[], Awaitable[None]],
          kill_after: int, written: Written) -> bool:
    """One process life on `state_dir`: a fresh library, everything registered again, the run
    until its end (False) or until it dies after its `kill_after`-th write (True)."""
    bk.reset()
    backend = CrashAfterWrites(bk.FileBackend(state_dir), kill_after, _crash,
                               lambda kind, key, value: written.append((kind, json.loads(json.dumps(value)))))
    register(backend)
    try:
        asyncio.run(run())
    except Crash:
        return True
    return False


def canonical(written: Written) -> Written:
    """The writes with each signal id (random per process) replaced by the order in which it
    first appears, so a position restored under its id stays the same trade and a reopened one
    would not. A risk book rewritten unchanged is left out: a restart writes the book again
    from the restored position, which changes nothing when it was saved before the kill."""
    names: dict[str, str] = {}

    def name(sid: str) -> str:
        return names.setdefault(sid, f"#{len(names) + 1}")

    def sig(row: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if row is None else {**row, "id": name(row["id"])}

    out: Written = []
    last_risk = None
    for kind, d in written:
        if kind == "risk":
            if d == last_risk:
                continue
            last_risk = d
            out.append((kind, [{**p, "signal": sig(p["signal"])} for p in d]))
            continue
        out.append((kind, {**d, "pending": sig(d["pending"]), "scheduled": sig(d["scheduled"]),
                           "partial": {name(k): v for k, v in d["partial"].items()},
                           "journal": [{**e, "signal": sig(e["signal"])} for e in d["journal"]]}))
    return out


def _live(written: Written) -> list[dict[str, Any]]:
    return [d for kind, d in written if kind == "live"]


def _multi_write_ticks(docs: list[dict[str, Any]]) -> list[int]:
    """The k whose next write was saved in the same tick (same cursor): crash points inside a tick."""
    return [k for k in range(1, len(docs)) if docs[k - 1]["cursor"] == docs[k]["cursor"]]


def _every_crash_point(tmp_path: Path, register: Callable[[Any], None],
                       run: Callable[[], Awaitable[None]]) -> Written:
    """Kill after each write k of the reference and restart: each crashed-and-restarted run must
    write exactly the reference's documents, in order. Returns the reference's writes."""
    reference: Written = []
    assert not _life(tmp_path / "reference", register, run, 0, reference)
    assert reference, "the run writes nothing"
    for k in range(1, len(reference) + 1):
        written: Written = []
        state = tmp_path / f"kill-{k}"
        assert _life(state, register, run, k, written), k
        assert len(written) == k
        assert not _life(state, register, run, 0, written)  # the restart runs to the end
        assert canonical(written) == canonical(reference), f"killed after write {k}"
        last = _live(written)[-1]  # and that is what the file holds
        assert json.loads((state / "live" / f"{last['symbol']}_{last['strategy_name']}.json").read_text()) == last
    return reference


@pytest.mark.parametrize("variant", ["as the child", "risk profile and partial levels"])
def test_a_kill_after_any_write_of_a_replay_resumes_to_the_same_writes(tmp_path, variant):
    risk = variant != "as the child"

    def register(backend: Any) -> None:
        register_replay(backend, risk_name="book" if risk else None)
        if risk:  # someone listens, so each new 10 % level toward TP or SL is saved as it is reached
            bk.listen_partial_profit(lambda event: None)
            bk.listen_partial_loss(lambda event: None)

    reference = _every_crash_point(tmp_path, register, lambda: run_replay(end_ms=SHORT_END))
    docs = _live(reference)
    assert len(docs) >= 15 and len(docs[-1]["journal"]) >= 6  # the short replay really trades
    # It holds the crash point that used to lose a trade: a close and a new open in one tick (D3).
    assert any(docs[k - 1]["pending"] is None and docs[k]["pending"] for k in _multi_write_ticks(docs))
    if risk:
        kinds = {kind for kind, _ in reference}
        assert kinds == {"live", "risk"} and any(d["partial"] for d in docs), kinds


def test_a_marketable_order_through_its_stop_is_cancelled_even_if_killed_in_between(tmp_path):
    """D22: at minute 20 (price 100) a long limit at 101 is marketable but its stop (100.4) is
    already passed: placed and cancelled in one tick, two writes. Killed between them, the
    restart must still cancel it at minute 20 at 100 — the market then jumps to 102, where the
    order would otherwise wait and end differently."""
    candles = flat_market(200, prices={i: 102.0 for i in range(20, 200)})

    def get_signal(symbol: str, when: Any) -> dict[str, Any] | None:
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

    docs = _live(_every_crash_point(tmp_path, register, run))
    assert len(docs) == 2 and _multi_write_ticks(docs) == [1]
    assert docs[0]["scheduled"]["price_open"] == 101.0 and docs[1]["scheduled"] is None
    [cancelled] = docs[-1]["journal"]
    assert (cancelled["action"], cancelled["close_timestamp"], cancelled["current_price"]) == (
        "cancelled", T0 + 20 * M, 100.0)


# --- the same with real processes and SIGKILL ---------------------------------------------------

def _child(state_dir: Path, log: Path, kill_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = child_env(BK_KILL_AFTER_WRITE=str(kill_after), BK_WRITE_LOG=str(log))
    return subprocess.run([sys.executable, str(CHILD), str(state_dir)], capture_output=True, text=True,
                          env=env, timeout=120)


def _logged(log: Path) -> Written:
    return [(w["kind"], w["value"]) for w in map(json.loads, log.read_text().splitlines())]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_inside_a_tick_of_the_child_replay_resumes_to_the_same_writes(tmp_path):
    p = _child(tmp_path / "reference", tmp_path / "reference.jsonl")
    assert p.returncode == 0 and p.stdout.strip().endswith("done"), p.stderr
    assert f"backtest_kit {Path(bk.__file__).resolve()}" in p.stderr.splitlines()  # the code under test
    reference = _logged(tmp_path / "reference.jsonl")
    assert {kind for kind, _ in reference} == {"live"}  # so k counts the live writes
    points = _multi_write_ticks(_live(reference))
    assert points  # the replay has ticks that write twice (a close, then the next open)
    for k in points:
        state, log = tmp_path / f"kill-{k}", tmp_path / f"kill-{k}.jsonl"
        assert _child(state, log, kill_after=k).returncode == -9
        assert len(_logged(log)) == k
        p = _child(state, log)
        assert p.returncode == 0, p.stderr
        assert canonical(_logged(log)) == canonical(reference), f"SIGKILL after write {k}"
