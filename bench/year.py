"""One year of synthetic 1m candles (525,600 frames) through Backtest.run with the rule strategy.

Prints seconds, frames per second, trades and peak memory. Usage: python bench/year.py [--profile]
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import time

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

# The script counts rejected signals itself; keep the library's per-error warnings off the figures.
logging.getLogger("backtest_kit").setLevel(logging.ERROR)

MINUTES = int(__import__("os").environ.get("BENCH_MINUTES", 525_600))
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z


async def main() -> None:
    candles = ArrayExchange(synthetic_candles(
        MINUTES + 24 * 60, start_ms=START - 24 * 60 * 60_000))
    bk.add_exchange(exchange_name="synthetic", get_candles=candles.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START,
                 end_date=START + (MINUTES - 1) * 60_000)
    bk.add_strategy(strategy_name="rule", interval="5m",
                    get_signal=rule_strategy(10, 50, 1.0, 0.6, 360, shorts=True))
    errors = []
    bk.listen_error(errors.append)
    t0 = time.perf_counter()
    trades = 0
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="rule", exchange_name="synthetic",
                                   frame_name="year"):
        trades += 1
    seconds = time.perf_counter() - t0
    stats = await bk.Backtest.get_data("BTCUSDT", "rule")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"frames          {MINUTES}")
    print(f"seconds         {seconds:.3f}")
    print(f"frames/s        {MINUTES / seconds:,.0f}")
    print(f"trades          {trades} (closed {stats.total_signals}, invalid signals {len(errors)})")
    print(f"total pnl       {stats.total_pnl:.4f}%")
    print(f"peak memory     {peak_mb:.1f} MB (process max RSS)")


if __name__ == "__main__":
    if "--profile" in sys.argv:
        import cProfile
        import pstats
        cProfile.run("asyncio.run(main())", "/tmp/year.prof")
        pstats.Stats("/tmp/year.prof").sort_stats("cumulative").print_stats(30)
    else:
        asyncio.run(main())
