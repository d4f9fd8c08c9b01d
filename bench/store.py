"""CandleStore speed on one year of 1m candles (525,600 rows): write, read all, read one month, missing, append.

Prints seconds (best of REPEAT runs, fresh store directory per write) and the bytes on disk.
Usage: PYTHONPATH=src python bench/store.py
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from backtest_kit._store import CandleStore

MINUTES = int(os.environ.get("BENCH_MINUTES", 525_600))
REPEAT = int(os.environ.get("BENCH_REPEAT", 3))
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
FEB = 1_706_745_600_000
MAR = 1_709_251_200_000


def year() -> np.ndarray:
    rng = np.random.default_rng(7)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, MINUTES)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 5e-4, MINUTES)) * close
    return np.column_stack([START + np.arange(MINUTES) * M, open_, np.maximum(open_, close) + spread,
                            np.minimum(open_, close) - spread, close, rng.exponential(10, MINUTES)])


def best(fn: Callable[[], object], setup: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(REPEAT):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    data = year()
    end = START + MINUTES * M
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = CandleStore(root)

        def fresh() -> None:
            shutil.rmtree(root, ignore_errors=True)

        write = best(lambda: store.write("binance", "BTC/USDT", "1m", data, covered=(START, end), now_ms=end),
                     fresh)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        read_all = best(lambda: store.read("binance", "BTC/USDT", "1m", START, end))
        read_month = best(lambda: store.read("binance", "BTC/USDT", "1m", FEB, MAR))
        missing = best(lambda: store.missing("binance", "BTC/USDT", "1m", START, end))
        day = data[-1440:].copy()
        rewrite_day = best(lambda: store.write("binance", "BTC/USDT", "1m", day, covered=(end - 1440 * M, end),
                                               now_ms=end))
        n = store.read("binance", "BTC/USDT", "1m", START, end)["timestamp"].size
    print(f"rows                  {n:,}")
    print(f"write year            {write:.3f} s  ({MINUTES / write:,.0f} rows/s, {size / 1e6:.1f} MB on disk)")
    print(f"read year             {read_all:.3f} s  ({MINUTES / read_all:,.0f} rows/s)")
    print(f"read one month (Feb)  {read_month:.4f} s")
    print(f"missing (year)        {missing * 1e3:.2f} ms")
    print(f"merge one day         {rewrite_day:.4f} s  (read-merge-write of the last month)")


if __name__ == "__main__":
    main()
