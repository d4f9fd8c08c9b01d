"""Years of synthetic 1m candles (525,600 frames a year) through Backtest.run with the rule strategy.

Prints the run's CPU and wall seconds, get_data's seconds, the floor (the same strategy awaited
once per 5-minute bucket with its `when` datetime and its context, its candles sliced from memory:
no engine) and the run / floor ratio, trades, and peak memory: the process's resident high-water
mark during the run and during get_data (reset once the synthetic candles are built, so the data
generator's temporaries do not count; the candles themselves do), and the whole process's max RSS.

Usage: python bench/year.py [--years N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import time
from typing import Any

from _memory import peak_mb, reset_peak

import backtest_kit as bk
from backtest_kit._candles import Candles, to_candles, vwap
from backtest_kit._context import ExecutionContext, enter, leave
from backtest_kit._time import MINUTE_MS, to_datetime
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

# The script counts rejected signals itself; keep the library's per-error warnings off the figures.
logging.getLogger("backtest_kit").setLevel(logging.ERROR)

YEAR_MINUTES = 525_600
START = 1_546_300_800_000  # 2019-01-01T00:00:00Z: five years end before the wall clock
BUCKET_MS = 5 * MINUTE_MS
LOOKBACK = 24 * 60  # a day of candles before the frame


def strategy() -> Any:
    # anchor="price": TP / SL are set from the price the trade opens at, so the benchmark times
    # trading, not signals rejected by the minimum-distance rules.
    return rule_strategy(10, 50, 1.0, 0.6, 360, shorts=True, anchor="price")


class MemoryCandles:
    """The floor's exchange: 1m candles sliced from memory by arithmetic, nothing checked or cached."""

    def __init__(self, c: Candles) -> None:
        self.c = c
        self.t0 = int(c.timestamp[0])

    async def window(self, symbol: str, interval: str, when: int, limit: int) -> Candles:
        assert interval == "1m"
        hi = (when // MINUTE_MS * MINUTE_MS - self.t0) // MINUTE_MS
        return self.c[max(hi - limit, 0): hi]

    async def average_price(self, symbol: str, when: int) -> float:
        return vwap(await self.window(symbol, "1m", when, 5))


async def floor(exchange: MemoryCandles, first: int, last: int) -> float:
    """CPU seconds of the strategy alone: awaited once per bucket with its `when` and context."""
    get_signal = strategy()
    cpu = time.process_time()
    for when in range(first // BUCKET_MS * BUCKET_MS, last + 1, BUCKET_MS):
        token = enter(ExecutionContext("BTCUSDT", when, True, exchange, "floor"))  # type: ignore[arg-type]
        try:
            await get_signal("BTCUSDT", to_datetime(when))
        finally:
            leave(token)
    return time.process_time() - cpu


async def main(years: int) -> None:
    minutes = YEAR_MINUTES * years
    candles = ArrayExchange(synthetic_candles(minutes + LOOKBACK, start_ms=START - LOOKBACK * MINUTE_MS))
    end = START + (minutes - 1) * MINUTE_MS
    bk.add_exchange(exchange_name="synthetic", get_candles=candles.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=end)
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=strategy())
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    reset_peak()
    cpu, wall = time.process_time(), time.perf_counter()
    trades = 0
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="rule", exchange_name="synthetic", frame_name="year"):
        trades += 1
    run_cpu, run_wall = time.process_time() - cpu, time.perf_counter() - wall
    run_peak = peak_mb()

    reset_peak()
    cpu = time.process_time()
    stats = await bk.Backtest.get_data("BTCUSDT", "rule")
    data_cpu = time.process_time() - cpu
    data_peak = peak_mb()

    floor_cpu = await floor(MemoryCandles(to_candles(candles.minute)), START, end)
    print(f"years           {years} ({minutes:,} frames)")
    print(f"run             {run_cpu:.3f} s CPU, {run_wall:.3f} s wall ({minutes / run_wall:,.0f} frames/s)")
    print(f"get_data        {data_cpu:.3f} s CPU")
    print(f"floor           {floor_cpu:.3f} s CPU (strategy alone, once per bucket)")
    print(f"run / floor     {run_cpu / floor_cpu:.2f}x")
    print(f"trades          {trades} (closed {stats.total_signals}, errors {len(errors)})")
    print(f"total pnl       {stats.total_pnl:.4f}%")
    print(f"peak memory     run {run_peak:.1f} MB, get_data {data_peak:.1f} MB (resident high-water marks)")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB "
          "(with the synthetic data generator)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=1, help="years of 1m candles (default 1)")
    parser.add_argument("--profile", action="store_true", help="cProfile the whole script to /tmp/year.prof")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats
        cProfile.run("asyncio.run(main(args.years))", "/tmp/year.prof")
        pstats.Stats("/tmp/year.prof").sort_stats("tottime").print_stats(30)
    else:
        asyncio.run(main(args.years))
