"""Candle data-quality checks: every issue kind on crafted arrays, with exact timestamps and counts."""

from __future__ import annotations

import numpy as np
import pytest

from backtest_kit._quality import KINDS, Issue, check_candles, is_error, summary
from backtest_kit.errors import ValidationError

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def series(n: int = 30) -> dict[str, np.ndarray]:
    """A clean 1m series: price 100 + i, high +1, low -1, volume 1."""
    p = 100.0 + np.arange(n, dtype=np.float64)
    return {"timestamps": T0 + np.arange(n, dtype=np.int64) * M, "open": p.copy(), "high": p + 1,
            "low": p - 1, "close": p + 0.5, "volume": np.ones(n)}


def check(cols: dict[str, np.ndarray], **kw) -> list[Issue]:
    return check_candles(cols["timestamps"], cols["open"], cols["high"], cols["low"], cols["close"],
                         cols["volume"], interval_ms=kw.pop("interval_ms", M), **kw)


def brief(issues: list[Issue]) -> list[tuple[str, int, int]]:
    return [(i.kind, (i.timestamp_ms - T0) // M, i.count) for i in issues]


def test_clean_series_has_no_issues():
    assert check(series()) == []
    assert check({k: v[:0] for k, v in series().items()}) == []
    assert check({k: v[:1] for k, v in series().items()}) == []


def test_gap_counts_missing_steps_from_first_missing_open_time():
    cols = series()
    keep = np.ones(30, dtype=bool)
    keep[[5, 6, 7, 20]] = False
    issues = check({k: v[keep] for k, v in cols.items()})
    assert brief(issues) == [("gap", 5, 3), ("gap", 20, 1)]
    assert all(not is_error(i) for i in issues)
    assert summary(issues) == {"gap": 4}


def test_gap_on_a_coarser_interval():
    h = 3_600_000
    ts = T0 + np.array([0, 1, 5, 6], dtype=np.int64) * h
    ones = np.ones(4)
    issues = check_candles(ts, ones, ones, ones, ones, ones, interval_ms=h)
    assert [(i.kind, (i.timestamp_ms - T0) // h, i.count) for i in issues] == [("gap", 2, 3)]


def test_duplicates_count_extra_copies_per_timestamp():
    cols = series(10)
    idx = np.array([0, 1, 2, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9])
    issues = check({k: v[idx] for k, v in cols.items()})
    assert brief(issues) == [("duplicate", 2, 2), ("duplicate", 5, 1)]
    assert all(is_error(i) for i in issues)


def test_unsorted_rows_reported_and_gaps_judged_on_sorted_order():
    cols = series(10)
    idx = np.array([0, 1, 4, 2, 3, 5, 6, 9, 8, 7])
    issues = check({k: v[idx] for k, v in cols.items()})
    # descents at positions 3 (ts 2) and 8, 9 (ts 8, 7): one single-row run and one two-row run
    assert brief(issues) == [("unsorted", 2, 1), ("unsorted", 8, 2)]


def test_high_below_low_and_open_close_outside_range():
    cols = series(10)
    cols["high"][3] = cols["low"][3] - 0.5           # high < low; open and close fall outside too
    cols["open"][6] = cols["high"][6] + 0.1
    cols["open"][7] = cols["low"][7] - 0.1
    cols["close"][8] = cols["high"][8] + 2
    issues = check(cols)
    assert brief(issues) == [("high_below_low", 3, 1), ("open_outside_range", 3, 1),
                             ("close_outside_range", 3, 1), ("open_outside_range", 6, 2),
                             ("close_outside_range", 8, 1)]
    assert summary(issues) == {"high_below_low": 1, "open_outside_range": 3, "close_outside_range": 2}


def test_non_positive_price_and_negative_volume():
    cols = series(10)
    cols["low"][2] = 0.0
    cols["low"][4] = -1.0
    cols["open"][4] = -0.5
    cols["volume"][9] = -3.0
    issues = check(cols)
    kinds = [(k, m, c) for k, m, c in brief(issues) if k in ("non_positive_price", "negative_volume")]
    assert kinds == [("non_positive_price", 2, 1), ("non_positive_price", 4, 1), ("negative_volume", 9, 1)]


def test_non_finite_values_and_timestamps():
    cols = series(10)
    cols["close"][1] = np.nan
    cols["volume"][2] = np.inf
    cols["high"][6] = -np.inf
    ts = cols["timestamps"].astype(np.float64)
    ts[8] = np.nan
    cols["timestamps"] = ts
    issues = check(cols)
    assert [(k, m, c) for k, m, c in brief(issues[1:]) if k == "non_finite"] == [("non_finite", 1, 2),
                                                                             ("non_finite", 6, 1)]
    nan_ts = [i for i in issues if i.kind == "non_finite" and i.timestamp_ms == 0]
    assert len(nan_ts) == 1 and nan_ts[0].count == 1
    # the NaN timestamp is left out of the gap scan: 7 -> 9 is one missing step
    assert [(k, m, c) for k, m, c in brief(issues) if k == "gap"] == [("gap", 8, 1)]
    # a non-finite row is reported once, not again as high_below_low / outside range
    assert {i.kind for i in issues} == {"non_finite", "gap"}


def test_zero_volume_runs_at_threshold():
    cols = series(40)
    cols["volume"][2:12] = 0.0    # 10: reported at default threshold
    cols["volume"][20:29] = 0.0   # 9: not reported
    cols["volume"][35] = 0.0      # 1
    issues = check(cols)
    assert brief(issues) == [("zero_volume_run", 2, 10)]
    assert not is_error(issues[0])
    assert brief(check(cols, zero_volume_run=9)) == [("zero_volume_run", 2, 10), ("zero_volume_run", 20, 9)]
    assert len(check(cols, zero_volume_run=1)) == 3


def test_every_kind_is_known_and_summary_orders_by_kind():
    issues = [Issue("zero_volume_run", 0, 12, ""), Issue("gap", 5, 2, ""), Issue("gap", 9, 1, "")]
    assert list(summary(issues).items()) == [("gap", 3), ("zero_volume_run", 12)]
    assert {i.kind for i in issues} <= set(KINDS)


def test_bad_arguments_raise_validation_error():
    cols = series(5)
    with pytest.raises(ValidationError, match="interval_ms"):
        check(cols, interval_ms=0)
    with pytest.raises(ValidationError, match="'close' has 4 values"):
        check_candles(cols["timestamps"], cols["open"], cols["high"], cols["low"], cols["close"][:4],
                      cols["volume"], interval_ms=M)
    with pytest.raises(ValidationError, match="1-D"):
        check_candles(cols["timestamps"], cols["open"], cols["high"], cols["low"], np.ones((5, 2)),
                      cols["volume"], interval_ms=M)
    with pytest.raises(ValidationError, match="not numeric"):
        check_candles(cols["timestamps"], ["a"] * 5, cols["high"], cols["low"], cols["close"],
                      cols["volume"], interval_ms=M)


def test_large_series_is_fast():
    n = 525_600
    cols = series(n)
    cols["volume"][1000:1020] = 0.0
    issues = check(cols)
    assert brief(issues) == [("zero_volume_run", 1000, 20)]
