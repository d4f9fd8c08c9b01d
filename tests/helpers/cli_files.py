"""Files the CLI tests hand to `backtest-kit`: 1m candles as a CSV, and a user's strategy file
with a plain get_signal and a factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STRATEGY_FILE = '''
import backtest_kit as bk

async def get_signal(symbol, when):
    price = await bk.get_average_price(symbol)
    if when.minute == 0 and when.hour % 6 == 0:
        return {"position": "long", "price_take_profit": price * 1.01, "price_stop_loss": price * 0.99,
                "minute_estimated_time": 120}
    return None

def make(every=6, tp=1.0):
    async def signal(symbol, when):
        price = await bk.get_average_price(symbol)
        if when.minute == 0 and when.hour % every == 0:
            return {"position": "long", "price_take_profit": price * (1 + tp / 100),
                    "price_stop_loss": price * 0.99, "minute_estimated_time": 120}
        return None
    return signal
'''


def write_csv(path: Path, candles: np.ndarray) -> Path:
    """`candles` (n, 6) as a CSV with header timestamp,open,high,low,close,volume (shortest exact floats)."""
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{int(r[0])},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}" for r in candles]
    path.write_text("\n".join(lines) + "\n")
    return path
