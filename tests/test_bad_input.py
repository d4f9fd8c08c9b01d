"""Issue 12: report paths that never leave their folder, and bad input that ends in a library error."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

import backtest_kit as bk
from backtest_kit._frames import timeframes
from backtest_kit._report.backtest import render_backtest_report
from backtest_kit._report.table import fmt_num, fmt_pct, fmt_price
from backtest_kit._schema import MAX_FRAMES
from backtest_kit.events import ClosedResult, PnL, SignalRow
from conftest import long_signal

T0 = 1_704_067_200_000
M = 60_000

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- 5. report paths never leave their directory; kinds never overwrite each other ------------------

@pytest.mark.parametrize("name", ["../../x", "ABSOLUTE", "a\0b", "..", "a/b/c", "C:\\evil"])
def test_report_names_are_escaped_into_their_folder(kit, in_tmp_dir, name):
    if name == "ABSOLUTE":
        name = str(in_tmp_dir / "abs-x")  # an absolute name must not write <tmp>/abs-x.md
    work = in_tmp_dir / "work"
    work.mkdir()
    os.chdir(work)
    kit.flat(0, 200).setup(frame=(10, 20), strategy_name=name, signals={10: long_signal()})
    kit.run()
    written = [asyncio.run(bk.Backtest.dump(kit.SYMBOL, name)),
               asyncio.run(bk.Schedule.dump(kit.SYMBOL, name)),
               asyncio.run(bk.Risk.dump(kit.SYMBOL, name)),
               asyncio.run(bk.Heat.dump(name))]
    folders = [work / "dump" / k for k in ("backtest", "schedule", "risk", "heatmap")]
    for path, folder in zip(written, folders):
        assert Path(path).parent == folder, path
    assert files(in_tmp_dir) == sorted(f"work/{Path(p).relative_to(work)}" for p in written)
    assert not (in_tmp_dir / "abs-x.md").exists()


def test_report_kinds_dumped_into_one_folder_never_overwrite_each_other(kit, in_tmp_dir):
    kit.flat(0, 300).setup(frame=(10, 100), signals={10: long_signal(), 40: long_signal(price_open=99.0)})
    kit.run()
    out = in_tmp_dir / "out"
    s, sym = kit.strategy_name, kit.SYMBOL
    dumps = {
        "backtest": (lambda: bk.Backtest.dump(sym, s, path=str(out)), lambda: bk.Backtest.get_report(sym, s)),
        "schedule": (lambda: bk.Schedule.dump(sym, s, path=out), lambda: bk.Schedule.get_report(sym, s)),
        "performance": (lambda: bk.Performance.dump(sym, s, path=str(out)), lambda: bk.Performance.get_report(sym, s)),
        "heatmap": (lambda: bk.Heat.dump(s, path=str(out)), lambda: bk.Heat.get_report(s)),
        "live": (lambda: bk.Live.dump(sym, s, path=str(out)), lambda: bk.Live.get_report(sym, s)),
    }
    paths = {}
    for kind, (dump, report) in dumps.items():
        paths[kind] = asyncio.run(dump())
        assert Path(paths[kind]).read_text() == asyncio.run(report()), kind
    assert len(set(paths.values())) == len(paths)
    assert paths["backtest"] == str(out / "st.md")  # the first keeps the plain name
    assert paths["schedule"] == str(out / "st.schedule.md")
    for kind, (_dump, report) in dumps.items():  # nothing was overwritten afterwards
        assert Path(paths[kind]).read_text() == asyncio.run(report()), kind
    again = asyncio.run(bk.Schedule.dump(sym, s, path=str(out)))
    assert again == paths["schedule"] and len(files(out)) == len(paths)


def test_a_file_that_is_not_a_report_is_never_overwritten(kit, in_tmp_dir):
    kit.flat(0, 100).setup(frame=(10, 20))
    kit.run()
    (in_tmp_dir / "st.md").write_text("my own notes")
    path = asyncio.run(bk.Backtest.dump(kit.SYMBOL, "st", path=str(in_tmp_dir)))
    assert path == str(in_tmp_dir / "st.backtest.md") and (in_tmp_dir / "st.md").read_text() == "my own notes"


def test_a_nul_in_the_dump_path_is_a_validation_error(kit):
    kit.flat(0, 100).setup(frame=(10, 20))
    kit.run()
    with pytest.raises(bk.ValidationError, match="NUL"):
        asyncio.run(bk.Backtest.dump(kit.SYMBOL, "st", path="out\0dir"))


# --- 8. bad input ends in a library error ---------------------------------------------------------

def test_huge_get_candles_limit_is_a_validation_error(kit):
    seen = []

    async def get_signal(symbol, when):
        for limit in (10**30, 5_000_001, 30_000_000 // 480):
            try:
                await bk.get_candles(symbol, "8h", limit)
            except Exception as e:  # noqa: BLE001 - what is raised is the point
                seen.append((type(e), str(e)))
        return None

    kit.flat(0, 100).setup(frame=(10, 10))
    bk.add_strategy(strategy_name="greedy", interval="1m", get_signal=get_signal)
    asyncio.run(_consume(bk.Backtest.run(kit.SYMBOL, strategy_name="greedy", exchange_name="ex", frame_name="fr")))
    assert [t for t, _ in seen] == [bk.ValidationError] * 3
    assert "at most 5,000,000" in seen[0][1] and "before 1970" in seen[2][1]


async def _consume(gen):
    return [x async for x in gen]


def test_frames_have_a_sane_range():
    start, end = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    with pytest.raises(bk.ValidationError, match=r"limit is 10,000,000 timeframes"):
        bk.add_frame(frame_name="all", interval="1m", start_date=start, end_date=end)
    bk.add_frame(frame_name="all", interval="3d", start_date=start, end_date=end)  # 1.2 M frames is fine
    for bad in (10**20, -1, datetime(1, 1, 1), 2**63, datetime(1969, 12, 31, tzinfo=UTC)):
        with pytest.raises(bk.ValidationError, match="start_date"):
            bk.add_frame(frame_name="bad", interval="1d", start_date=bad, end_date=end)
    assert "bad" not in [f.frame_name for f in bk.list_frames()]
    with pytest.raises(bk.ValidationError, match="limit"):
        timeframes(0, 10**15, "1m")
    assert len(timeframes(0, (MAX_FRAMES - 1) * M, "1m")) == MAX_FRAMES


@pytest.mark.parametrize("key, value", [
    ("CC_TICK_TTL_MS", 10**400), ("CC_AVG_PRICE_CANDLES_COUNT", 10**30), ("CC_SCHEDULE_AWAIT_MINUTES", 1e300),
    ("CC_MAX_SIGNAL_LIFETIME_MINUTES", 2**63), ("CC_PERCENT_FEE", Fraction(10**400)),
    ("CC_PERCENT_SLIPPAGE", 1e300), ("CC_GET_CANDLES_RETRY_COUNT", 10**12),
    ("CC_MAX_SIGNAL_GENERATION_SECONDS", 10**18),
])
def test_huge_config_values_are_config_errors(key, value):
    with pytest.raises(bk.ConfigError, match=key):
        bk.set_config(**{key: value})
    assert bk.get_config() == bk.get_default_config()


def _trade(price: float) -> ClosedResult:
    row = SignalRow(id="x", position="long", price_open=price, price_take_profit=price * 1.01,
                    price_stop_loss=price * 0.99, minute_estimated_time=60, note="", symbol="S",
                    strategy_name="s", exchange_name="e", scheduled_at=T0, pending_at=T0)
    return ClosedResult(signal=row, current_price=price * 1.01, symbol="S", strategy_name="s", exchange_name="e",
                        backtest=True, close_reason="take_profit", close_timestamp=T0 + M,
                        pnl=PnL(pnl_percentage=0.8, price_open=price, price_close=price * 1.01))


@pytest.mark.parametrize("price", [1e300, 1.7e308, 1e21, 5e-324])
def test_report_prices_near_the_float_limits_format(price):
    from backtest_kit._engine.stats import backtest_statistics

    text = asyncio.run(render_backtest_report("S", "s", backtest_statistics([_trade(price)])))
    assert "Open Price" in text
    assert fmt_price(1e300) == "1e+300 USD" and fmt_pct(-1e300) == "-1e+300%" and fmt_num(1.5e22, 3) == "1.5e+22"
    assert fmt_price(123.456) == "123.45600000 USD"  # ordinary prices unchanged
