"""Engine cost alone: a year of 1m frames with a get_signal that returns None at once.

Prints the run's CPU time per get_signal call (candle fetch and cache fill included) against the
floor (the same get_signal awaited once per 5-minute bucket with its `when` datetime and a new
execution context each call: no engine), and the resident high-water mark of the run (reset once
the synthetic candles are built). Usage: python bench/engine_overhead.py
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from _memory import peak_mb, reset_peak

import backtest_kit as bk
from backtest_kit._context import ExecutionContext, enter, leave
from backtest_kit._time import MINUTE_MS, to_datetime
from backtest_kit.demo import ArrayExchange, synthetic_candles

# The script counts rejected signals itself; keep the library's per-error warnings off the figures.
logging.getLogger("backtest_kit").setLevel(logging.ERROR)

MINUTES = 525_600
START = 1_546_300_800_000  # 2019-01-01T00:00:00Z
BUCKET_MS = 5 * MINUTE_MS


async def main() -> None:
    exchange = ArrayExchange(synthetic_candles(MINUTES + 1440, start_ms=START - 86_400_000))
    bk.add_exchange(exchange_name="synthetic", get_candles=exchange.get_candles)
    end = START + (MINUTES - 1) * MINUTE_MS
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=end)
    calls: list[datetime] = []

    async def get_signal(symbol: str, when: datetime) -> None:
        calls.append(when)
        return None

    bk.add_strategy(strategy_name="noop", interval="5m", get_signal=get_signal)
    reset_peak()
    cpu, wall = time.process_time(), time.perf_counter()
    async for _ in bk.Backtest.run("BTCUSDT", strategy_name="noop", exchange_name="synthetic", frame_name="year"):
        pass
    run_cpu, run_wall = time.process_time() - cpu, time.perf_counter() - wall
    run_peak = peak_mb()
    n = len(calls)

    calls.clear()
    cpu = time.process_time()
    for when in range(START, end + 1, BUCKET_MS):
        token = enter(ExecutionContext("BTCUSDT", when, True, None, "floor"))  # type: ignore[arg-type]
        try:
            await get_signal("BTCUSDT", to_datetime(when))
        finally:
            leave(token)
    floor_cpu = time.process_time() - cpu
    assert len(calls) == n, (len(calls), n)

    print(f"frames          {MINUTES:,} ({n:,} get_signal calls)")
    print(f"run             {run_cpu:.3f} s CPU, {run_wall:.3f} s wall")
    print(f"per call        {run_cpu / n * 1e6:.2f} us CPU (floor {floor_cpu / n * 1e6:.2f} us, "
          f"engine {(run_cpu - floor_cpu) / n * 1e6:.2f} us above it)")
    print(f"peak memory     {run_peak:.1f} MB (resident high-water mark of the run)")


if __name__ == "__main__":
    asyncio.run(main())
