"""Candle download speed and the requests of a repeated backtest, against the loopback FakeBinance.

1. `backtest-kit data download`'s path (ccxt async client -> ExchangeClient.download -> CandleStore) for
   DAYS days of 1m candles (Binance's 1000-candle pages), best and median of REPEAT fresh stores.
2. A backtest with a CandleStore (rule strategy over the same days): requests of a first run into an
   empty store, then of the identical run in a new process (must be 0).

Usage: PYTHONPATH=src python bench/download.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import backtest_kit as bk  # noqa: E402
from backtest_kit._exchange import ExchangeClient  # noqa: E402
from backtest_kit._schema import ExchangeSchema  # noqa: E402
from backtest_kit.exchanges import CcxtExchange  # noqa: E402
from helpers.fake_exchange_api import T0, FakeBinance, make_client, synthetic_candles  # noqa: E402

DAYS = int(os.environ.get("BENCH_DAYS", 30))
REPEAT = int(os.environ.get("BENCH_REPEAT", 3))
M = 60_000
N = DAYS * 1440

RUN = """
import asyncio, json, sys, types
import backtest_kit as bk
from backtest_kit.demo import rule_strategy
from backtest_kit.exchanges import add_ccxt_exchange
from helpers.fake_exchange_api import make_client

url, store, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def main():
    client = make_client(types.SimpleNamespace(base_url=url), async_=True)
    add_ccxt_exchange("binance", client, store=bk.CandleStore(store))
    bk.add_frame(frame_name="fr", interval="1m", start_date=start, end_date=end)
    bk.add_strategy(strategy_name="rule", interval="5m", get_signal=rule_strategy(10, 50, 1.0, 0.6, 360))
    try:
        n = len([r async for r in bk.Backtest.run("BTC/USDT", strategy_name="rule", exchange_name="binance",
                                                  frame_name="fr")])
    finally:
        await client.close()
    print(json.dumps({"trades": n}))

asyncio.run(main())
"""


async def download(server: FakeBinance, store: bk.CandleStore) -> tuple[int, float]:
    adapter = CcxtExchange(make_client(server, async_=True))
    try:
        await adapter.load_markets()
        client = ExchangeClient(ExchangeSchema("binance", adapter.get_candles, store=store,
                                               resolve_symbol=adapter.resolve_symbol), backtest=False)
        started = time.perf_counter()
        fetched = await client.download("BTC/USDT", "1m", T0, T0 + N * M)
        return fetched, time.perf_counter() - started
    finally:
        await adapter.close()


def backtest_process(server: FakeBinance, store: Path, script: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"}
    server.reset_log()
    out = subprocess.run([sys.executable, str(script), server.base_url, str(store), str(T0 + 60 * M),
                          str(T0 + (N - 1) * M)], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["trades"], server.count()


def main() -> None:
    data = synthetic_candles(N, seed=1, volatility=0.002)
    with FakeBinance({"BTCUSDT": data}, max_requests=100_000) as server, tempfile.TemporaryDirectory() as tmp:
        speeds = []
        for i in range(REPEAT):
            fetched, seconds = asyncio.run(download(server, bk.CandleStore(Path(tmp) / f"dl{i}")))
            assert fetched == N, fetched
            speeds.append(fetched / seconds)
        print(f"download        {DAYS} days of 1m = {N:,} candles, {-(-N // 1000)} pages of 1000")
        print(f"candles/s       median {statistics.median(speeds):,.0f}, best {max(speeds):,.0f} "
              f"(runs: {', '.join(f'{s:,.0f}' for s in speeds)})")
        script = Path(tmp) / "run.py"
        script.write_text(textwrap.dedent(RUN))
        store = Path(tmp) / "bt"
        trades1, first = backtest_process(server, store, script)
        trades2, second = backtest_process(server, store, script)
        assert trades1 == trades2
        print(f"backtest        {trades1} trades; requests: first run into an empty store {first}, "
              f"the identical run in a new process {second}")


if __name__ == "__main__":
    main()
