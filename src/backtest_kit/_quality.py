"""Data-quality checks for candle column arrays: gaps, duplicates, ordering, OHLC consistency, bad values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import ValidationError

KINDS: tuple[str, ...] = (
    "gap", "duplicate", "unsorted", "non_finite", "non_positive_price", "negative_volume",
    "high_below_low", "open_outside_range", "close_outside_range", "zero_volume_run",
)
WARNING_KINDS: frozenset[str] = frozenset({"gap", "zero_volume_run"})
_ORDER = {kind: i for i, kind in enumerate(KINDS)}


@dataclass(frozen=True)
class Issue:
    """One finding: `count` candles of `kind` starting at open time `timestamp_ms` (missing ones for a gap)."""

    kind: str
    timestamp_ms: int
    count: int
    detail: str


def is_error(issue: Issue) -> bool:
    """Gaps and zero-volume runs are warnings (venues do have quiet or halted periods); the rest are errors."""
    return issue.kind not in WARNING_KINDS


def summary(issues: Iterable[Issue]) -> dict[str, int]:
    """Candles affected per kind (the sum of `count`), kinds in KINDS order."""
    totals: dict[str, int] = {}
    for issue in issues:
        totals[issue.kind] = totals.get(issue.kind, 0) + issue.count
    return {kind: totals[kind] for kind in sorted(totals, key=lambda k: _ORDER.get(k, len(_ORDER)))}


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start indices and lengths of the runs of True in `mask`."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def _float_column(name: str, values: npt.ArrayLike, n: int | None) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"check_candles: column {name!r} is not numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValidationError(f"check_candles: column {name!r} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValidationError(f"check_candles: column {name!r} has {arr.shape[0]} values, timestamps has {n}")
    return arr


def check_candles(
    timestamps: npt.ArrayLike,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    *,
    interval_ms: int,
    zero_volume_run: int = 10,
) -> list[Issue]:
    """All issues of one candle series (array order), sorted by timestamp then kind.

    Row-wise kinds are reported as runs of consecutive flagged rows; a duplicate issue counts the extra copies
    of one timestamp; a gap counts the missing steps and is stamped with the first missing open time. Gaps and
    duplicates are judged on the sorted finite timestamps, so an unsorted series still gets them right. A row
    whose timestamp is not finite is stamped 0.
    """
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int | np.integer) or interval_ms <= 0:
        raise ValidationError(f"check_candles: interval_ms must be a positive int, got {interval_ms!r}")
    if isinstance(zero_volume_run, bool) or not isinstance(zero_volume_run, int) or zero_volume_run < 1:
        raise ValidationError(f"check_candles: zero_volume_run must be an int >= 1, got {zero_volume_run!r}")
    step = int(interval_ms)
    ts_f = _float_column("timestamps", timestamps, None)
    n = ts_f.shape[0]
    o, h, lo, c, v = (_float_column(name, col, n) for name, col in
                      (("open", open), ("high", high), ("low", low), ("close", close), ("volume", volume)))
    if n == 0:
        return []
    # Integer timestamps are kept exact (float64 would round beyond 2**53); NaN only exists in float input.
    raw_ts = np.asarray(timestamps)
    ts_ok = np.isfinite(ts_f)
    ts = raw_ts.astype(np.int64) if raw_ts.dtype.kind in "iu" else np.where(ts_ok, ts_f, 0).astype(np.int64)

    found: list[tuple[str, npt.NDArray[np.intp], npt.NDArray[np.intp], str]] = []

    def flag_rows(kind: str, mask: npt.NDArray[np.bool_], what: str) -> None:
        starts, lengths = _runs(mask)
        if starts.size:
            found.append((kind, starts, lengths, what))

    prices = np.stack((o, h, lo, c))
    finite = np.isfinite(prices).all(axis=0) & np.isfinite(v)
    flag_rows("non_finite", ~finite | ~ts_ok, "non-finite timestamp, price or volume")
    # Rows with a non-finite value are reported once, as non_finite, not again by every comparison.
    with np.errstate(invalid="ignore"):
        flag_rows("non_positive_price", finite & (prices <= 0).any(axis=0), "open/high/low/close <= 0")
        flag_rows("negative_volume", finite & (v < 0), "volume < 0")
        flag_rows("high_below_low", finite & (h < lo), "high < low")
        flag_rows("open_outside_range", finite & ((o < lo) | (o > h)), "open outside [low, high]")
        flag_rows("close_outside_range", finite & ((c < lo) | (c > h)), "close outside [low, high]")
        zero = v == 0
    starts, lengths = _runs(zero)
    long_runs = lengths >= zero_volume_run
    if long_runs.any():
        found.append(("zero_volume_run", starts[long_runs], lengths[long_runs],
                      f"zero volume for >= {zero_volume_run} consecutive candles"))

    issues: list[Issue] = []
    for kind, idx, counts, what in found:
        stamps = ts[idx]
        issues.extend(Issue(kind, int(t), int(k), what) for t, k in zip(stamps.tolist(), counts.tolist(), strict=True))

    valid = ts[ts_ok]
    if valid.size > 1:
        diffs = np.diff(valid)
        down = np.flatnonzero(diffs < 0) + 1  # rows whose timestamp is below the previous one
        if down.size:
            mask = np.zeros(valid.size, dtype=np.bool_)
            mask[down] = True
            run_starts, run_lengths = _runs(mask)
            issues.extend(Issue("unsorted", int(valid[i]), int(k), "timestamp below the previous one")
                          for i, k in zip(run_starts.tolist(), run_lengths.tolist(), strict=True))
        ordered = np.sort(valid) if down.size else valid
        sdiff = np.diff(ordered)
        dup = sdiff == 0
        if dup.any():
            run_starts, run_lengths = _runs(dup)
            issues.extend(Issue("duplicate", int(ordered[i]), int(k), f"{k + 1} candles share this timestamp")
                          for i, k in zip(run_starts.tolist(), run_lengths.tolist(), strict=True))
        big = np.flatnonzero(sdiff > step)
        if big.size:
            missing = (sdiff[big] - 1) // step  # whole steps strictly between the two open times
            issues.extend(
                Issue("gap", int(ordered[i]) + step, int(k),
                      f"{k} candle(s) missing between {int(ordered[i])} and {int(ordered[i + 1])}")
                for i, k in zip(big.tolist(), missing.tolist(), strict=True))

    issues.sort(key=lambda i: (i.timestamp_ms, _ORDER[i.kind]))
    return issues
