"""Frames: start, start+step, ... up to and including end (ENGINE.md "Frames")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit._frames import timeframes
from backtest_kit._time import to_ms
from backtest_kit.demo import ArrayExchange
from conftest import SYMBOL, T0, M, ms

pytestmark = pytest.mark.usefixtures("no_retry_delay")

UTC = UTC
DAY = 1440


def d(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("interval, start, end, count", [
    ("1m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 1, 0), 61),
    ("1m", d(2024, 1, 1), d(2024, 1, 2), 1441),
    ("3m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 0, 10), 4),      # 0, 3, 6, 9
    ("5m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 1, 0), 13),
    ("15m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 1, 0), 5),
    ("30m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 2, 0), 5),
    ("1h", d(2024, 1, 1), d(2024, 1, 2), 25),
    ("2h", d(2024, 1, 1), d(2024, 1, 1, 23), 12),               # 0..22
    ("4h", d(2024, 1, 1), d(2024, 1, 2), 7),
    ("6h", d(2024, 1, 1), d(2024, 1, 2), 5),
    ("8h", d(2024, 1, 1), d(2024, 1, 2), 4),
    ("12h", d(2024, 1, 1), d(2024, 1, 3), 5),
    ("1d", d(2024, 1, 1), d(2024, 1, 8), 8),                    # a week, both ends
    ("1d", d(2024, 1, 1), d(2024, 1, 7, 23, 59), 7),
    ("3d", d(2024, 1, 1), d(2024, 1, 10), 4),                   # 1, 4, 7, 10
    ("3d", d(2024, 1, 1), d(2024, 1, 9), 3),                    # 1, 4, 7
    ("1m", d(2024, 1, 1), d(2024, 1, 1), 1),                    # start == end
])
def test_frame_counts(interval, start, end, count):
    frames = timeframes(to_ms(start), to_ms(end), interval)
    assert len(frames) == count
    assert int(frames[0]) == to_ms(start)
    assert int(frames[-1]) <= to_ms(end)
    step = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
            "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320}[interval] * M
    assert [int(b - a) for a, b in zip(frames[:-1], frames[1:])] == [step] * (count - 1)
    assert int(frames[-1]) + step > to_ms(end)


def test_both_ends_inclusive():
    frames = timeframes(T0, T0 + 60 * M, "1m")
    assert int(frames[0]) == T0 and int(frames[-1]) == T0 + 60 * M


def test_frames_are_not_aligned_to_the_interval():
    frames = timeframes(T0 + 7 * M, T0 + 30 * M, "5m")
    assert [int(f) for f in frames] == [T0 + m * M for m in (7, 12, 17, 22, 27)]


def run_with_frame(interval, start, end, *, data_minutes):
    """Register a flat market and a frame, run, and return (on_timeframe args, progress events)."""
    rows = np.array([[T0 + m * M, 100, 100, 100, 100, 1] for m in range(-10, data_minutes + 1)],
                    dtype=np.float64)
    bk.add_exchange(exchange_name="ex", get_candles=ArrayExchange(rows).get_candles)
    seen, progress, errors = [], [], []
    bk.add_frame(frame_name="fr", interval=interval, start_date=start, end_date=end,
                 callbacks={"on_timeframe": lambda *a: seen.append(a)})
    bk.add_strategy(strategy_name="st", interval="1m", get_signal=lambda s, w: None)
    bk.listen_backtest_progress(progress.append)
    bk.listen_error(errors.append)

    async def go():
        return [r async for r in bk.Backtest.run(SYMBOL, strategy_name="st", exchange_name="ex",
                                                 frame_name="fr")]
    assert asyncio.run(go()) == []
    assert errors == []
    return seen, progress


def test_hour_of_1m_frames_through_a_run():
    seen, progress = run_with_frame("1m", d(2024, 1, 1, 0, 0), d(2024, 1, 1, 1, 0), data_minutes=70)
    ((frames, start, end, interval),) = seen
    assert len(frames) == 61
    assert frames[0] == d(2024, 1, 1) and frames[-1] == d(2024, 1, 1, 1, 0)
    assert all(f.tzinfo is not None and f.utcoffset() == timedelta(0) for f in frames)
    assert (start, end, interval) == (d(2024, 1, 1), d(2024, 1, 1, 1), "1m")
    assert progress[-1].total_frames == 61


def test_week_of_daily_frames_through_a_run():
    seen, progress = run_with_frame("1d", d(2024, 1, 1), d(2024, 1, 8), data_minutes=8 * DAY)
    ((frames, *_),) = seen
    assert frames == [d(2024, 1, day) for day in range(1, 9)]
    assert progress[-1].total_frames == 8


def test_three_day_frames_through_a_run():
    seen, _ = run_with_frame("3d", d(2024, 1, 1), d(2024, 1, 10), data_minutes=10 * DAY)
    assert seen[0][0] == [d(2024, 1, 1), d(2024, 1, 4), d(2024, 1, 7), d(2024, 1, 10)]


def test_end_before_start_rejected_at_add_frame():
    with pytest.raises(bk.ValidationError) as info:
        bk.add_frame(frame_name="bad", interval="1m", start_date=d(2024, 1, 2), end_date=d(2024, 1, 1))
    msg = str(info.value)
    assert "start_date" in msg and "end_date" in msg
    assert bk.list_frames() == []
    bk.add_frame(frame_name="bad", interval="1m", start_date=d(2024, 1, 1), end_date=d(2024, 1, 2))
    assert [f.frame_name for f in bk.list_frames()] == ["bad"]


def test_unknown_frame_interval_rejected():
    for interval in ("2d", "1w", "90s", "1M"):
        with pytest.raises(bk.ValidationError):
            bk.add_frame(frame_name="f", interval=interval, start_date=d(2024, 1, 1),
                         end_date=d(2024, 1, 2))
    assert bk.list_frames() == []


def test_naive_dates_are_utc():
    bk.add_frame(frame_name="naive", interval="1h", start_date=datetime(2024, 1, 1),
                 end_date=datetime(2024, 1, 1, 5))
    bk.add_frame(frame_name="aware", interval="1h", start_date=d(2024, 1, 1), end_date=d(2024, 1, 1, 5))
    naive, aware = bk.list_frames()
    assert (naive.start_ms, naive.end_ms) == (aware.start_ms, aware.end_ms) == (T0, T0 + 300 * M)


def test_non_utc_aware_dates_are_converted():
    plus2 = timezone(timedelta(hours=2))
    bk.add_frame(frame_name="f", interval="1h", start_date=datetime(2024, 1, 1, 2, tzinfo=plus2),
                 end_date=datetime(2024, 1, 1, 4, tzinfo=plus2))
    (f,) = bk.list_frames()
    assert f.start_ms == T0 and f.end_ms == T0 + 120 * M


def test_epoch_ms_dates_accepted():
    bk.add_frame(frame_name="f", interval="1m", start_date=ms(0), end_date=ms(60))
    (f,) = bk.list_frames()
    assert len(timeframes(f.start_ms, f.end_ms, f.interval)) == 61
