"""Engine cost alone: the year benchmark with a get_signal that returns None at once.

Prints seconds, get_signal calls per second and peak memory. Usage: python bench/engine_overhead.py
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, synthetic_candles

# The script counts rejected signals itself; keep the library's per-error warnings off the figures.
logging.getLogger("backtest_kit").setLevel(logging.ERROR)

MINUTES = 525_600
START = 1_704_067_200_000


async def main() -> None:
    exchange = ArrayExchange(synthetic_candles(MINUTES + 1440, start_ms=START - 86_400_000))
    bk.add_exchange(exchange_name="synthetic", get_candles=exchange.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=START + (MINUTES - 1) * 60_000)
    calls = []

    async def get_signal(symbol, when):
        calls.append(when)
        return None

    bk.add_strategy(strategy_name="noop", interval="5m", get_signal=get_signal)
    t0 = time.perf_counter()
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="noop", exchange_name="synthetic", frame_name="year"):
        pass
    seconds = time.perf_counter() - t0
    print(f"frames          {MINUTES}")
    print(f"seconds         {seconds:.3f}")
    print(f"get_signal/s    {len(calls) / seconds:,.0f} ({len(calls)} calls)")
    print(f"peak memory     {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB (process max RSS)")


if __name__ == "__main__":
    asyncio.run(main())
