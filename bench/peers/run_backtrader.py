"""backtrader: the rule as a Strategy with SMA indicators and bracket orders (market entry at the next open,
a limit take-profit and a stop stop-loss, one cancelling the other); the lifetime closes at a later open."""

from __future__ import annotations

import time
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

PACKAGE = "backtrader"


def run(mode: str, candles: np.ndarray, minutes: int) -> dict[str, Any]:
    import backtrader as bt
    import pandas as pd

    ts = candles[:, 0].astype(np.int64)
    first_ask, last_ask = START, frame_end(minutes)
    bucket_ms = INTERVAL_MIN * MINUTE

    class Rule(bt.Strategy):  # type: ignore[misc]  # backtrader ships no type information
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.last_bucket = -1
            self.entry_bar = -1
            self.bracket: list[Any] = []
            self.closed = 0

        def notify_trade(self, trade: Any) -> None:
            if trade.isclosed:
                self.closed += 1

        def next(self) -> None:
            i = len(self.data) - 1
            if self.position:
                if i + 1 - self.entry_bar >= LIFETIME_MIN:
                    for order in self.bracket[1:]:
                        self.cancel(order)
                    self.bracket = []
                    self.close()
                return
            if any(order.alive() for order in self.bracket):  # the entry fills at this bar's open
                return
            when = int(ts[i]) + MINUTE  # ours asks at the open of the next bar with this bar closed
            if when < first_ask or when > last_ask or when // bucket_ms == self.last_bucket:
                return
            self.last_bucket = when // bucket_ms
            fn, fp, sn, sp = self.fast[0], self.fast[-1], self.slow[0], self.slow[-1]
            price = self.data.close[0]  # = the next open in the synthetic data
            if fp <= sp and fn > sn:
                self.bracket = self.buy_bracket(size=1, exectype=bt.Order.Market,
                                                limitprice=price * (1 + TP_PCT / 100),
                                                stopprice=price * (1 - SL_PCT / 100))
            elif fp >= sp and fn < sn:
                self.bracket = self.sell_bracket(size=1, exectype=bt.Order.Market,
                                                 limitprice=price * (1 - TP_PCT / 100),
                                                 stopprice=price * (1 + SL_PCT / 100))
            else:
                return
            self.entry_bar = i + 1

    frame = pd.DataFrame(candles[:, 1:6], columns=["open", "high", "low", "close", "volume"],
                         index=pd.to_datetime(ts, unit="ms"))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1))
    cerebro.addstrategy(Rule)
    cerebro.broker.setcash(1_000_000.0)  # one unit a trade, as in backtesting.py
    cerebro.broker.setcommission(commission=FEE_PCT / 100)
    cerebro.broker.set_slippage_perc(SLIPPAGE_PCT / 100)
    t0 = time.perf_counter()
    strategy = cerebro.run()[0]
    seconds = time.perf_counter() - t0
    # A position still open when the data ends counts as one trade, as ours closes it (end_of_data).
    trades = strategy.closed + (1 if strategy.position else 0)
    return {"seconds": seconds, "trades": trades, "version": bt.__version__}
