"""Ours' vectorised rule (run_ours.vector_rule) against its get_signal, call by call.

Runs the event-mode backtest of bench/peers.py, records every get_signal call (time and result), and
compares each with the get_signals arrays at the bar that closed just before it: the same position, and
take-profit and stop-loss equal to the bit. Prints the counts; exits 1 on any mismatch.
Usage: python bench/peers/check_vector.py [--minutes N]   (default 100,000)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rule import FAST, INTERVAL_MIN, LIFETIME_MIN, MINUTE, SL_PCT, SLOW, START, TP_PCT, frame_end
from run_ours import vector_rule

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from peers import make_candles  # noqa: E402  (bench/peers.py, beside this folder)


async def event_calls(candles: np.ndarray, minutes: int) -> list[tuple[int, dict[str, Any] | None]]:
    inner = rule_strategy(FAST, SLOW, TP_PCT, SL_PCT, LIFETIME_MIN, shorts=True, anchor="price")
    calls: list[tuple[int, dict[str, Any] | None]] = []

    async def get_signal(symbol: str, when: datetime) -> dict[str, Any] | None:
        result = await inner(symbol, when)
        calls.append((round(when.timestamp() * 1000), result))
        return result

    exchange = ArrayExchange(candles)
    bk.add_exchange(exchange_name="synthetic", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="frame", interval="1m", start_date=START, end_date=frame_end(minutes))
    bk.add_strategy(strategy_name="rule", interval=f"{INTERVAL_MIN}m", get_signal=get_signal)
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="rule", exchange_name="synthetic", frame_name="frame"):
        pass
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=100_000)
    minutes = ap.parse_args().minutes
    candles = make_candles(minutes)
    calls = asyncio.run(event_calls(candles, minutes))
    c = candles
    arrays = vector_rule(FAST, SLOW, TP_PCT, SL_PCT, LIFETIME_MIN)(
        bk.Candles(c[:, 0].astype(np.int64), c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5]))
    ts = c[:, 0].astype(np.int64)
    position, tp, sl = arrays["position"], arrays["price_take_profit"], arrays["price_stop_loss"]
    mismatches = signals = 0
    for when, result in calls:
        k = int(np.searchsorted(ts, when - MINUTE))  # the bar that closed at `when`
        if result is None:
            mismatches += int(position[k] != 0)
            continue
        signals += 1
        side = 1 if result["position"] == "long" else -1
        same = (position[k] == side and tp[k] == result["price_take_profit"]
                and sl[k] == result["price_stop_loss"])
        mismatches += int(not same)
    off_bucket = sum(1 for when, _ in calls if when % (INTERVAL_MIN * MINUTE))
    print(f"{minutes:,} minutes: {len(calls):,} get_signal calls ({off_bucket} right after a close, off the "
          f"{INTERVAL_MIN}-minute grid), {signals:,} signals, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
