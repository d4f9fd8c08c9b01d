"""Child process of the crash test: paper-trades a replayed market with the file backend.

Usage: python live_child.py STATE_DIR [START_MS]. Prints one line per event ("tick <action>")
and "done" at the end of the replay. A restart continues from the saved state; START_MS starts
the clock later, as if the process had been down until then.
"""

import asyncio
import sys

import backtest_kit as bk
from backtest_kit.demo import ArrayExchange, rule_strategy, synthetic_candles

T0 = 1_704_067_200_000
DAY = 86_400_000


def main(state_dir: str, start_ms: int | None = None) -> None:
    candles = synthetic_candles(2 * 1440, start_ms=T0, seed=11)
    bk.use_persist_adapter(bk.FileBackend(state_dir))
    bk.add_exchange(exchange_name="replay", get_candles=ArrayExchange(candles).get_candles)
    bk.add_strategy(strategy_name="rule", interval="1m",
                    get_signal=rule_strategy(3, 12, 0.6, 0.5, 45, shorts=True, limit_offset_pct=0.05))
    bk.listen_signal_live(lambda r: print(f"tick {r.action}", flush=True))

    async def run() -> None:
        clock = bk.VirtualClock(start_ms or T0 + DAY // 2, T0 + DAY + DAY // 4)
        async for _ in bk.Live.run("BTCUSDT", strategy_name="rule", exchange_name="replay", clock=clock):
            pass

    asyncio.run(run())
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
