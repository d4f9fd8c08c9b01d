"""backtesting.py: the rule as a Strategy whose next() sees each closed 1m bar; orders fill at the next open."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from rule import (
    FAST,
    FEE_PCT,
    INTERVAL_MIN,
    LIFETIME_MIN,
    MINUTE,
    SL_PCT,
    SLIPPAGE_PCT,
    SLOW,
    START,
    TP_PCT,
    frame_end,
)

PACKAGE = "backtesting"


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    import pandas as pd
    return pd.Series(x).rolling(n).mean().to_numpy()


def run(mode: str, candles: np.ndarray, minutes: int) -> dict[str, Any]:
    import pandas as pd
    from backtesting import Backtest, Strategy, __version__

    ts = candles[:, 0].astype(np.int64)
    first_ask, last_ask = START, frame_end(minutes)
    bucket_ms = INTERVAL_MIN * MINUTE

    class Rule(Strategy):  # type: ignore[misc]  # backtesting ships no type information
        def init(self) -> None:
            self.fast = self.I(_sma, self.data.Close, FAST)
            self.slow = self.I(_sma, self.data.Close, SLOW)
            self.last_bucket = -1
            self.entry_bar = -1

        def next(self) -> None:
            i = len(self.data) - 1
            if self.position:
                # The order fills at the next open: the lifetime ends at bar entry_bar + LIFETIME_MIN.
                if i + 1 - self.entry_bar >= LIFETIME_MIN:
                    self.position.close()
                return
            if self.orders:  # the entry placed at the previous bar fills at this bar's open
                return
            when = int(ts[i]) + MINUTE  # ours asks at the open of the next bar with this bar closed
            if when < first_ask or when > last_ask or when // bucket_ms == self.last_bucket:
                return
            self.last_bucket = when // bucket_ms
            fn, fp, sn, sp = self.fast[-1], self.fast[-2], self.slow[-1], self.slow[-2]
            # The next open equals this close in the synthetic data, so the levels sit at the fill price.
            price = self.data.Close[-1]
            if fp <= sp and fn > sn:
                self.buy(size=1, tp=price * (1 + TP_PCT / 100), sl=price * (1 - SL_PCT / 100))
            elif fp >= sp and fn < sn:
                self.sell(size=1, tp=price * (1 - TP_PCT / 100), sl=price * (1 + SL_PCT / 100))
            else:
                return
            self.entry_bar = i + 1

    frame = pd.DataFrame(candles[:, 1:6], columns=["Open", "High", "Low", "Close", "Volume"],
                         index=pd.to_datetime(ts, unit="ms"))
    # One unit a trade: backtesting.py trades whole units only, and a stake of a share of the equity would
    # shrink below one unit after a year of losing trades, and its orders would then be dropped.
    bt = Backtest(frame, Rule, cash=1_000_000, commission=(FEE_PCT + SLIPPAGE_PCT) / 100, finalize_trades=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.run()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "trades": len(stats["_trades"]), "version": __version__}
