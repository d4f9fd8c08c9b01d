"""16 parameter sets x one year of 1m candles: sequential vs process vs Ray (local), and a 64-trial Optuna study.

Prints seconds per executor, the speed-up over sequential, and checks the three agree.
Usage: python bench/sweep.py [--minutes N] [--skip-ray] [--skip-optuna]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import time

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

logging.getLogger("backtest_kit").setLevel(logging.ERROR)  # the figures, not per-error warnings

START = 1_704_067_200_000
SPACE = {"fast": [5, 8, 10, 15], "slow": [40, 50, 60, 80]}  # 16 sets


def make(fast: int, slow: int):
    return rule_strategy(fast, slow, 1.0, 0.6, 360, shorts=True, anchor="price")


def setup(minutes: int) -> None:
    bk.reset()
    candles = ArrayExchange(synthetic_candles(minutes + 1440, start_ms=START - 86_400_000))
    bk.add_exchange(exchange_name="synthetic", get_candles=candles.get_candles)
    bk.add_frame(frame_name="year", interval="1m", start_date=START, end_date=START + (minutes - 1) * 60_000)


async def sweep(name: str, **kw: object) -> tuple[float, bk.SweepStatistics]:
    bk.add_sweep(name, make, kw.pop("space", SPACE), exchange_name="synthetic", frame_name="year", interval="5m",
                 metric="sharpe", **kw)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    async for _ in bk.Sweep.run("BTCUSDT", sweep_name=name):
        pass
    return time.perf_counter() - t0, await bk.Sweep.get_data("BTCUSDT", name)


def key(data: bk.SweepStatistics) -> list[tuple[object, ...]]:
    return sorted((t.number, tuple(t.params.items()), t.metric_value, t.stats.total_signals) for t in data.trials)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=525_600)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-optuna", action="store_true")
    args = ap.parse_args()
    print(f"{len(SPACE['fast']) * len(SPACE['slow'])} parameter sets x {args.minutes:,} 1m candles, "
          f"{os.cpu_count()} cores")
    figures: dict[str, float] = {}
    results = {}
    kinds = ["sequential", "process"] + ([] if args.skip_ray else ["ray"])
    for kind in kinds:
        setup(args.minutes)
        if kind == "ray":
            import ray
            t0 = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False)
            print(f"  ray.init        {time.perf_counter() - t0:6.2f} s (not counted below)")
        seconds, data = asyncio.run(sweep(f"grid-{kind}", executor=kind))
        figures[kind], results[kind] = seconds, key(data)
        trades = sum(t.stats.total_signals for t in data.trials)
        print(f"  {kind:<15} {seconds:6.2f} s  {seconds / len(data.trials):5.2f} s/trial  "
              f"x{figures['sequential'] / seconds:4.2f} vs sequential  ({trades} trades, best {data.best.params})")
        if kind == "ray":
            ray.shutdown()
    for kind in kinds[1:]:
        print(f"  {kind} results identical to sequential: {results[kind] == results['sequential']}")
    if not args.skip_optuna:
        setup(args.minutes)
        space = {"fast": (3, 20), "slow": (30, 120)}
        seconds, data = asyncio.run(sweep("optuna", space=space, search="optuna", trials=64, executor="process"))
        print(f"  optuna 64 trials (TPE, process) {seconds:6.2f} s  {seconds / 64:5.2f} s/trial  "
              f"best {data.best.params} sharpe {data.best.metric_value:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory (parent) {peak:.0f} MB")


if __name__ == "__main__":
    main()
