"""The synthetic year of bench/year.py through Backtest.run with a vectorised strategy (get_signals).

The moving-average rule of `backtest_kit.demo.rule_strategy(10, 50, 1.0, 0.6, 360, anchor="price")`
written with numpy over the whole closed 1m history: means summed left to right as the rule's
`_mean` does, TP / SL set from the 5-candle VWAP the trade opens at, so the trades are the same.
Prints the first run's seconds (it also fetches and checks the year of candles), the median of
BENCH_REPEAT (5) more runs on the cached candles (split into the get_signals call and the engine),
trades and peak memory; `--compare` also runs the get_signal strategy and checks the closed
trades are identical.

Usage: python bench/vector_year.py [--compare] [--profile]   (BENCH_MINUTES=N for a shorter run)
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import time
from typing import Any

import numpy as np

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

logging.getLogger("backtest_kit").setLevel(logging.ERROR)  # rejected signals are counted below

MINUTES = int(os.environ.get("BENCH_MINUTES", 525_600))
REPEAT = int(os.environ.get("BENCH_REPEAT", 5))
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FAST, SLOW, TP, SL, LIFETIME, VWAP_N = 10, 50, 1.0, 0.6, 360, 5
spent: list[float] = []  # seconds inside get_signals


def sequential_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of x[k-w+1 .. k] at each k (NaN before), added left to right like the rule's _mean."""
    out = np.full(len(x), np.nan)
    m = len(x) - w + 1
    if m <= 0:
        return out
    total = x[0:m].copy()
    for j in range(1, w):
        total += x[j:j + m]
    out[w - 1:] = total / w
    return out


def rolling_vwap(c: Any, n: int) -> np.ndarray:
    """VWAP of the n candles up to each bar, in the order the engine's current price sums them."""
    out = np.full(len(c), np.nan)
    m = len(c) - n + 1
    if m <= 0:
        return out
    tv = (c.high + c.low + c.close) / 3 * c.volume
    num, vol, cls = tv[0:m].copy(), c.volume[0:m].copy(), c.close[0:m].copy()
    for j in range(1, n):
        num += tv[j:j + m]
        vol += c.volume[j:j + m]
        cls += c.close[j:j + m]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n - 1:] = np.where(vol == 0, cls / n, num / vol)
    return out


def get_signals(c: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    fast, slow = sequential_mean(c.close, FAST), sequential_mean(c.close, SLOW)
    fast_prev, slow_prev = np.r_[np.nan, fast[:-1]], np.r_[np.nan, slow[:-1]]
    up = (fast_prev <= slow_prev) & (fast > slow)
    down = (fast_prev >= slow_prev) & (fast < slow)
    position = up.astype(np.int8) - down.astype(np.int8)
    price = rolling_vwap(c, VWAP_N)
    spent.append(time.perf_counter() - t0)
    return {"position": position, "price_take_profit": price * (1 + position * TP / 100),
            "price_stop_loss": price * (1 - position * SL / 100), "minute_estimated_time": LIFETIME}


def trade_key(r: Any) -> tuple[Any, ...]:
    return (r.signal.position, r.signal.pending_at, r.signal.price_open, r.close_timestamp, r.close_reason,
            r.pnl.pnl_percentage)


async def run(name: str) -> tuple[float, float, list[Any]]:
    """(wall seconds, CPU seconds, results) of one Backtest.run."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = [r async for r in bk.Backtest.run("BTCUSDT", strategy_name=name, exchange_name="synthetic",
                                            frame_name="year")]
    return time.perf_counter() - t0, time.process_time() - c0, out


async def main() -> None:
    candles = ArrayExchange(synthetic_candles(MINUTES + 24 * 60, start_ms=START - 24 * 60 * 60_000))
    bk.add_exchange(exchange_name="synthetic", get_candles=candles.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=START + (MINUTES - 1) * 60_000)
    bk.add_strategy(strategy_name="vector", interval="5m", get_signals=get_signals)
    errors: list[Any] = []
    bk.listen_error(errors.append)
    cold, cold_cpu, trades = await run("vector")  # fetches and checks the year of candles (the shared cache) first
    cold_signals = spent[-1]
    warm = []
    for _ in range(REPEAT):  # the same run on the cached candles
        seconds, cpu, again = await run("vector")
        assert [trade_key(r) for r in again] == [trade_key(r) for r in trades]
        warm.append((seconds, spent[-1], cpu))
    warm.sort()
    median, median_signals, _ = warm[len(warm) // 2]
    cpus = sorted(w[2] for w in warm)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"frames          {MINUTES}")
    print(f"cold run        {cold:.3f} s, CPU {cold_cpu:.3f} s (get_signals {cold_signals:.3f} s; candles fetched "
          "and checked)")
    print(f"warm run        {median:.3f} s median of {REPEAT} (min {warm[0][0]:.3f}, max {warm[-1][0]:.3f}; "
          f"get_signals {median_signals:.3f}, the engine {median - median_signals:.3f}); CPU median "
          f"{cpus[len(cpus) // 2]:.3f} s")
    print(f"trades          {len(trades)} (invalid signals {len(errors)})")
    print(f"peak memory     {peak_mb:.1f} MB (process max RSS)")
    if "--compare" in sys.argv:
        bk.add_strategy(strategy_name="event", interval="5m",
                        get_signal=rule_strategy(FAST, SLOW, TP, SL, LIFETIME, shorts=True, anchor="price"))
        event_seconds, _, event_trades = await run("event")
        same = [trade_key(r) for r in trades] == [trade_key(r) for r in event_trades]
        print(f"get_signal      {event_seconds:.3f} s (warm candles), {len(event_trades)} trades; "
              f"identical trades: {same}")


if __name__ == "__main__":
    if "--profile" in sys.argv:
        import cProfile
        import pstats
        cProfile.run("asyncio.run(main())", "/tmp/vector_year.prof")
        pstats.Stats("/tmp/vector_year.prof").sort_stats("cumulative").print_stats(30)
    else:
        asyncio.run(main())
