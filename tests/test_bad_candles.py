"""One bad candle in a large cached chunk spoils only the windows that contain it."""

from __future__ import annotations

import asyncio

import numpy as np

import backtest_kit as bk
from backtest_kit._time import iso
from backtest_kit.demo import ArrayExchange, synthetic_candles

T0 = 1_704_067_200_000
M = 60_000


def test_persistent_bad_candle_fails_only_its_windows():
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    data = synthetic_candles(3000, start_ms=T0)
    bad_minute = 1500
    data[bad_minute, 4] = np.nan  # the exchange keeps serving a NaN close there
    exchange = ArrayExchange(data)
    fetches = []

    async def get_candles(symbol, interval, since, limit):
        fetches.append(limit)
        return await exchange.get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 100 * M, end_date=T0 + 2900 * M)
    calls = []

    async def get_signal(symbol, when):
        calls.append(int(when.timestamp() * 1000))
        await bk.get_candles(symbol, "1m", 3)
        return None

    bk.add_strategy(strategy_name="s", interval="1m", get_signal=get_signal)
    errors = []
    bk.listen_error(errors.append)

    async def main():
        return [r async for r in bk.Backtest.run("BTC", strategy_name="s", exchange_name="ex", frame_name="fr")]

    assert asyncio.run(main()) == []
    bad_time = T0 + bad_minute * M
    # The price window [t-5m, t) holds the bad candle for t = bad+1 .. bad+5: those ticks fail
    # before asking the strategy; the strategy's 3-candle windows are never reached there.
    priced_out = {bad_time + k * M for k in range(1, 6)}
    assert len(errors) == 5
    assert all(iso(bad_time) in str(e) and "non-finite close" in str(e) for e in errors)
    # The equity marks cover it too: without them the equity figures are missing (reported)
    assert asyncio.run(bk.Backtest.get_data("BTC", "s")).final_equity is None
    assert len(errors) == 6 and "non-finite close" in str(errors[-1])
    expected_calls = [t for t in range(T0 + 100 * M, T0 + 2901 * M, M) if t not in priced_out]
    assert calls == expected_calls
    assert len(fetches) < 10  # chunked: the bad candle did not force per-window fetches
