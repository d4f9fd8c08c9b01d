"""A 10-symbol, 3-month portfolio against the same ten single-symbol backtests run one after another.

Prints the seconds of each, their ratio and the trades. Usage: python bench/portfolio.py
"""

from __future__ import annotations

import asyncio
import resource
import time

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

START = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTES = 90 * 1440
SYMBOLS = [f"S{i:02d}" for i in range(10)]


def register() -> None:
    sources = {s: ArrayExchange(synthetic_candles(MINUTES + 1440, start_ms=START - 1440 * 60_000, seed=100 + i))
               for i, s in enumerate(SYMBOLS)}

    async def get_candles(symbol, interval, since, limit):  # type: ignore[no-untyped-def]
        return await sources[symbol].get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="synthetic", get_candles=get_candles)
    bk.add_frame(frame_name="q1", interval="1m", start_date=START, end_date=START + (MINUTES - 1) * 60_000)
    bk.add_sizing(sizing_name="tenth", method="fixed-percentage", risk_percentage=0.06)  # ~10 % notional each
    bk.add_strategy(strategy_name="rule", interval="5m", sizing_name="tenth",
                    get_signal=rule_strategy(10, 50, 1.0, 0.6, 360, anchor="price"))


async def singles() -> int:
    trades = 0
    for s in SYMBOLS:
        async for _ in bk.Backtest.run(s, strategy_name="rule", exchange_name="synthetic", frame_name="q1"):
            trades += 1
    return trades


async def portfolio() -> int:
    trades = 0
    async for _ in bk.Portfolio.run(SYMBOLS, strategies="rule", exchange_name="synthetic", frame_name="q1"):
        trades += 1
    return trades


def main() -> None:
    register()
    t0 = time.perf_counter()
    n_single = asyncio.run(singles())
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_port = asyncio.run(portfolio())
    port_s = time.perf_counter() - t0
    stats = asyncio.run(bk.Portfolio.get_data("q1"))
    print(f"symbols              {len(SYMBOLS)} x {MINUTES // 1440} days of 1m frames")
    print(f"ten singles, seconds {single_s:.3f} ({n_single} results)")
    print(f"portfolio, seconds   {port_s:.3f} ({n_port} results)")
    print(f"ratio                {port_s / single_s:.2f}x")
    print(f"portfolio return     {stats.total_return_pct:+.2f}% (max drawdown {stats.max_drawdown_pct:.2f}%)")
    print(f"peak memory          {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB (process max RSS)")


if __name__ == "__main__":
    main()
