"""The ccxt adapter against a stand-in with ccxt's method names (no network in CI)."""

from __future__ import annotations

import asyncio

import numpy as np

import backtest_kit as bk
from backtest_kit.demo import synthetic_candles
from backtest_kit.exchanges import add_ccxt_exchange

T0 = 1_704_067_200_000


class FakeCcxt:
    """Async like ccxt.async_support; pages of at most 500 candles, as real venues cap them."""

    def __init__(self):
        self.rows = synthetic_candles(3000, start_ms=T0).tolist()
        self.calls = []

    async def load_markets(self):
        return {}

    async def fetch_ohlcv(self, symbol, timeframe, since, limit):
        assert timeframe == "1m"
        self.calls.append((since, limit))
        ts = np.array([r[0] for r in self.rows])
        i = int(np.searchsorted(ts, since))
        return self.rows[i:i + min(limit, 500)]

    def price_to_precision(self, symbol, price):
        return f"{price:.2f}"

    def amount_to_precision(self, symbol, amount):
        return f"{amount:.4f}"


def test_backtest_through_a_capped_ccxt_exchange_matches_direct_data():
    fake = FakeCcxt()
    add_ccxt_exchange("venue", fake)
    bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 100 * 60_000, end_date=T0 + 2900 * 60_000)
    seen = []

    async def get_signal(symbol, when):
        c = await bk.get_candles(symbol, "1m", 3)
        seen.append((int(when.timestamp() * 1000), c.timestamp.tolist()))
        formatted = await bk.format_price(symbol, 123.456), await bk.format_quantity(symbol, 0.123456)
        assert formatted == ("123.46", "0.1235")
        return None

    bk.add_strategy(strategy_name="s", interval="15m", get_signal=get_signal)

    async def main():
        return [r async for r in bk.Backtest.run("BTC/USDT", strategy_name="s", exchange_name="venue", frame_name="fr")]

    assert asyncio.run(main()) == []
    assert len(seen) == 2900 // 15 - 100 // 15 + 1  # one call per 15-minute bucket touched
    for when, stamps in seen:
        assert stamps == [when - 180_000, when - 120_000, when - 60_000]
    assert all(limit >= 1 for _, limit in fake.calls) and len(fake.calls) < 20  # paged, not per call
