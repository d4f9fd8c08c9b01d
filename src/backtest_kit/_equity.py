"""Account equity marked to market at 1m candle closes, and statistics computed on that equity.

Pure and vectorised: numpy for the equity curve and the statistics, pandas only for the
time-indexed series handed to users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ValidationError

if TYPE_CHECKING:  # pandas loads on first use: `import backtest_kit` stays light
    import pandas as pd

__all__ = [
    "EquityStats",
    "TradeArrays",
    "daily_returns",
    "equity_curve",
    "equity_statistics",
    "equity_statistics_of",
    "exposure_mask",
    "resample_last",
    "resampled_last",
]

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_FREQ_MS: dict[str, int] = {"1m": MINUTE_MS, "1h": 3_600_000, "1d": DAY_MS}
# A standard deviation this small is rounding noise of constant returns, not risk: dividing by it
# would report an astronomically large Sharpe instead of "undefined".
_ZERO_STD = 1e-14

Freq = Literal["1m", "1h", "1d"]


def _frozen(a: NDArray[np.generic]) -> None:
    a.setflags(write=False)


@dataclass(frozen=True, eq=False)
class TradeArrays:
    """Trades as columns: one row per trade, all arrays of the same length (read-only copies).

    side: +1 long, -1 short. quantity: units (> 0). entry_ts / exit_ts: ms open times of the
    candles in which the trade is filled (exit_ts >= entry_ts). entry_price / exit_price: fill
    prices (> 0), slippage already included. entry_fee / exit_fee: money charged at each fill (>= 0).
    """

    side: NDArray[np.int64]
    quantity: NDArray[np.float64]
    entry_ts: NDArray[np.int64]
    exit_ts: NDArray[np.int64]
    entry_price: NDArray[np.float64]
    exit_price: NDArray[np.float64]
    entry_fee: NDArray[np.float64]
    exit_fee: NDArray[np.float64]

    def __post_init__(self) -> None:
        ints = ("side", "entry_ts", "exit_ts")
        floats = ("quantity", "entry_price", "exit_price", "entry_fee", "exit_fee")
        n: int | None = None
        for name in ints + floats:
            raw = getattr(self, name)
            arr = np.array(raw, dtype=np.int64 if name in ints else np.float64, copy=True)
            if name in ints and not np.array_equal(arr, np.asarray(raw)):
                raise ValidationError(f"TradeArrays.{name} must hold integers")
            if arr.ndim != 1:
                raise ValidationError(f"TradeArrays.{name} must be one-dimensional, got shape {arr.shape}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValidationError(f"TradeArrays.{name} has {arr.shape[0]} rows, expected {n}")
            if name in floats and not np.all(np.isfinite(arr)):
                raise ValidationError(f"TradeArrays.{name} must be finite")
            _frozen(arr)
            object.__setattr__(self, name, arr)
        if not np.all((self.side == 1) | (self.side == -1)):
            raise ValidationError("TradeArrays.side must be +1 (long) or -1 (short)")
        if not np.all(self.quantity > 0):
            raise ValidationError("TradeArrays.quantity must be > 0")
        if not (np.all(self.entry_price > 0) and np.all(self.exit_price > 0)):
            raise ValidationError("TradeArrays prices must be > 0")
        if not (np.all(self.entry_fee >= 0) and np.all(self.exit_fee >= 0)):
            raise ValidationError("TradeArrays fees must be >= 0")
        if not np.all(self.exit_ts >= self.entry_ts):
            raise ValidationError("TradeArrays.exit_ts must be >= entry_ts")

    def __len__(self) -> int:
        return int(self.side.shape[0])

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, float]]) -> TradeArrays:
        """Build from dicts with keys side, quantity, entry_ts, exit_ts, entry_price, exit_price
        and optionally entry_fee, exit_fee (default 0)."""
        required = ("side", "quantity", "entry_ts", "exit_ts", "entry_price", "exit_price")
        for i, r in enumerate(records):
            missing = [k for k in required if k not in r]
            if missing:
                raise ValidationError(f"trade #{i} lacks {', '.join(missing)}")
        return cls(
            side=np.array([r["side"] for r in records], dtype=np.int64),
            quantity=np.array([r["quantity"] for r in records], dtype=np.float64),
            entry_ts=np.array([r["entry_ts"] for r in records], dtype=np.int64),
            exit_ts=np.array([r["exit_ts"] for r in records], dtype=np.int64),
            entry_price=np.array([r["entry_price"] for r in records], dtype=np.float64),
            exit_price=np.array([r["exit_price"] for r in records], dtype=np.float64),
            entry_fee=np.array([r.get("entry_fee", 0.0) for r in records], dtype=np.float64),
            exit_fee=np.array([r.get("exit_fee", 0.0) for r in records], dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> TradeArrays:
        """No trades."""
        return cls.from_records([])

    @property
    def realized_pnl(self) -> NDArray[np.float64]:
        """Money PnL of each trade once closed: side*qty*(exit - entry) minus both fees."""
        gross = self.side * self.quantity * (self.exit_price - self.entry_price)
        out: NDArray[np.float64] = gross - self.entry_fee - self.exit_fee
        return out


def _check_timestamps(timestamps: ArrayLike) -> NDArray[np.int64]:
    raw = np.asarray(timestamps)
    if raw.ndim != 1 or raw.shape[0] == 0:
        raise ValidationError("timestamps must be a non-empty one-dimensional array")
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValidationError(f"timestamps must be int64 milliseconds, got dtype {raw.dtype}")
    ts = raw.astype(np.int64, copy=False)
    if ts.shape[0] > 1 and not np.all(np.diff(ts) > 0):
        raise ValidationError("timestamps must be strictly increasing")
    return ts


def _locate(ts: NDArray[np.int64], when: NDArray[np.int64], what: str) -> NDArray[np.intp]:
    """Positions of `when` in `ts`; every value must be one of the candle open times."""
    pos = np.searchsorted(ts, when)
    ok = pos < ts.shape[0]
    ok[ok] = ts[pos[ok]] == when[ok]
    if not np.all(ok):
        bad = int(when[~ok][0])
        raise ValidationError(f"trade {what} {bad} is not a candle open time inside timestamps")
    return pos


def equity_curve(
    timestamps: ArrayLike,
    close: ArrayLike,
    trades: TradeArrays,
    initial_capital: float,
) -> NDArray[np.float64]:
    """Account equity at the close of each candle, trades marked to market (O(candles + trades)).

    Convention (margin / CFD style, as backtesting.py): equity = cash + unrealised PnL, where
    a trade open at a close contributes side*qty*(close - entry_price) - entry_fee, i.e.
    qty*close - cost for a long and qty*(entry_price - close) for a short. A trade is open at
    the closes of candles entry_ts <= t < exit_ts; from the close of the exit_ts candle on it
    counts its realised PnL side*qty*(exit_price - entry_price) - entry_fee - exit_fee, so
    equity once every trade is closed is initial_capital + sum(trades.realized_pnl).

    >>> ts = np.arange(4, dtype=np.int64) * 60_000
    >>> close = np.array([100.0, 110.0, 120.0, 90.0])
    >>> t = TradeArrays.from_records([dict(side=1, quantity=2, entry_ts=0, exit_ts=120_000,
    ...     entry_price=100.0, exit_price=120.0, entry_fee=1.0, exit_fee=1.0)])
    >>> equity_curve(ts, close, t, 1000.0).tolist()
    [999.0, 1019.0, 1038.0, 1038.0]
    """
    ts = _check_timestamps(timestamps)
    px = np.asarray(close, dtype=np.float64)
    if px.shape != ts.shape:
        raise ValidationError(f"close has shape {px.shape}, timestamps {ts.shape}")
    if not np.all(np.isfinite(px)):
        raise ValidationError("close must be finite")
    if not math.isfinite(initial_capital):
        raise ValidationError("initial_capital must be finite")
    n = ts.shape[0]
    eq = np.full(n, float(initial_capital), dtype=np.float64)
    if len(trades) == 0:
        return eq
    i_in = _locate(ts, trades.entry_ts, "entry_ts")
    i_out = _locate(ts, trades.exit_ts, "exit_ts")

    signed_qty = trades.side * trades.quantity
    # While open, a trade adds close*signed_qty - (signed_qty*entry_price + entry_fee). Both terms
    # are step functions of time: add them where the trade opens, remove them where it closes
    # (slot n absorbs nothing: exits are inside the series), then one cumulative sum each.
    units = np.zeros(n + 1)
    basis = np.zeros(n + 1)
    count = np.zeros(n + 1, dtype=np.int64)
    np.add.at(units, i_in, signed_qty)
    np.add.at(units, i_out, -signed_qty)
    b = signed_qty * trades.entry_price + trades.entry_fee
    np.add.at(basis, i_in, b)
    np.add.at(basis, i_out, -b)
    np.add.at(count, i_in, 1)
    np.add.at(count, i_out, -1)
    units_open = np.cumsum(units[:n])
    basis_open = np.cumsum(basis[:n])
    # +a then -a in a float cumsum can leave a residue of a few ulps; where nothing is open the
    # open part is exactly zero, so flat equity equals initial + realised PnL to the last bit.
    flat = np.cumsum(count[:n]) == 0
    units_open[flat] = 0.0
    basis_open[flat] = 0.0

    realized = np.zeros(n)
    np.add.at(realized, i_out, trades.realized_pnl)
    eq += np.cumsum(realized)
    eq += px * units_open - basis_open
    return eq


def exposure_mask(timestamps: ArrayLike, trades: TradeArrays) -> NDArray[np.bool_]:
    """True for candles during which at least one trade is held, entry and exit candles included
    (backtesting.py's "Exposure Time"); exposure_pct = 100 * mask.mean()."""
    ts = _check_timestamps(timestamps)
    n = ts.shape[0]
    if len(trades) == 0:
        return np.zeros(n, dtype=np.bool_)
    count = np.zeros(n + 1, dtype=np.int64)
    np.add.at(count, _locate(ts, trades.entry_ts, "entry_ts"), 1)
    np.add.at(count, _locate(ts, trades.exit_ts, "exit_ts") + 1, -1)
    out: NDArray[np.bool_] = np.cumsum(count[:n]) > 0
    return out


def _to_index(ms: NDArray[np.int64]) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True))


def _last_per_bucket(
    ts: NDArray[np.int64], values: NDArray[np.float64], step_ms: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    bucket = (ts // step_ms) * step_ms
    # ts is increasing, so a bucket's last sample is the one just before the bucket changes.
    last = np.flatnonzero(np.append(bucket[1:] != bucket[:-1], True))
    return bucket[last], values[last]


def resampled_last(timestamps: ArrayLike, values: ArrayLike,
                   freq: Freq) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """resample_last as arrays: (bucket starts in ms, last value in each bucket)."""
    ts = _check_timestamps(timestamps)
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != ts.shape:
        raise ValidationError(f"values has shape {vals.shape}, timestamps {ts.shape}")
    if freq not in _FREQ_MS:
        raise ValidationError(f"freq must be one of {', '.join(_FREQ_MS)}, got {freq!r}")
    return _last_per_bucket(ts, vals, _FREQ_MS[freq])


def resample_last(timestamps: ArrayLike, values: ArrayLike, freq: Freq) -> pd.Series:
    """Last value in each UTC bucket of `freq`, labelled by the bucket start (ms timestamps in).

    Buckets without any sample are omitted rather than invented.
    """
    labels, last = resampled_last(timestamps, values, freq)
    import pandas as pd

    return pd.Series(last, index=_to_index(labels), dtype=np.float64)


@dataclass(frozen=True)
class EquityStats:
    """Statistics of an equity curve; None where a figure is undefined. Percentages are in %."""

    initial_capital: float
    final_equity: float
    total_return_pct: float
    cagr_pct: float | None
    max_drawdown_pct: float
    max_drawdown_duration_days: float
    volatility_ann_pct: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    exposure_pct: float | None
    buy_and_hold_return_pct: float | None


def _series_ms(s: pd.Series, what: str) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Index as int64 UTC ms (naive indexes are read as UTC) and finite float values."""
    import pandas as pd

    idx = s.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise ValidationError(f"{what} must have a DatetimeIndex, got {type(idx).__name__}")
    if len(idx) == 0:
        raise ValidationError(f"{what} is empty")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    ms = np.asarray(idx.as_unit("ms").asi8, dtype=np.int64)
    if ms.shape[0] > 1 and not np.all(np.diff(ms) > 0):
        raise ValidationError(f"{what} index must be strictly increasing")
    vals = np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise ValidationError(f"{what} must be finite (no NaN/inf)")
    return ms, vals


def _step_ms(s: pd.Series, ms: NDArray[np.int64]) -> int | None:
    """Sampling step: the smallest gap between samples, else the index freq, else unknown."""
    if ms.shape[0] > 1:
        return int(np.min(np.diff(ms)))
    freq = getattr(s.index, "freq", None)
    if freq is not None:
        import pandas as pd

        try:
            return int(pd.Timedelta(freq).total_seconds() * 1000)
        except (TypeError, ValueError):  # calendar offsets such as month-end have no fixed length
            return None
    return None


def _daily(ms: NDArray[np.int64], vals: NDArray[np.float64], initial_capital: float) -> pd.Series:
    full_days, r = _daily_arrays(ms, vals, initial_capital)
    import pandas as pd

    return pd.Series(r, index=_to_index(full_days), dtype=np.float64, name="return")


def _daily_arrays(ms: NDArray[np.int64], vals: NDArray[np.float64],
                  initial_capital: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(every UTC day from the first sample's to the last's, in ms; the simple return of each)."""
    days, last = _last_per_bucket(ms, vals, DAY_MS)
    # Every calendar day from the first to the last: a day without samples keeps the previous
    # day's equity (a 0% return), so the count of returns is the elapsed number of days.
    pos = (days - days[0]) // DAY_MS
    filled_at = np.full(int(pos[-1]) + 1, -1, dtype=np.int64)
    filled_at[pos] = np.arange(pos.shape[0])
    filled_at = np.maximum.accumulate(filled_at)
    day_eq = last[filled_at]
    prev = np.concatenate(([initial_capital], day_eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = day_eq / prev - 1.0
    full_days = days[0] + np.arange(day_eq.shape[0], dtype=np.int64) * DAY_MS
    return full_days, r


def daily_returns(equity: pd.Series, *, initial_capital: float) -> pd.Series:
    """Simple returns of equity resampled to UTC calendar days (last value per day, gaps carried
    forward), the first measured against initial_capital."""
    ms, vals = _series_ms(equity, "equity")
    return _daily(ms, vals, float(initial_capital))


def _drawdown(
    ms: NDArray[np.int64], vals: NDArray[np.float64], initial_capital: float, step: int
) -> tuple[float, float]:
    """(max drawdown as a fraction of the peak, longest peak-to-recovery time in ms)."""
    # The initial capital is the first peak, one step before the first sample's label (the sample
    # is the value at its candle's close), so a loss on the very first candle is a drawdown.
    t = np.concatenate(([ms[0] - step], ms))
    v = np.concatenate(([initial_capital], vals))
    peak = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - v) / peak, 0.0)
    max_dd = float(dd.max())
    at_high = v >= peak
    # Time of the latest high at or before each point; a drawdown spell lasts from that high to
    # the first point back at (or above) it, or to the last sample when equity never recovers.
    high_t = np.maximum.accumulate(np.where(at_high, t, np.iinfo(np.int64).min))
    recovered = np.flatnonzero(at_high[1:] & ~at_high[:-1]) + 1
    spells = t[recovered] - high_t[recovered - 1]
    if not at_high[-1]:
        spells = np.append(spells, t[-1] - high_t[-1])
    longest = float(spells.max()) if spells.shape[0] else 0.0
    return max_dd, longest


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def equity_statistics(
    equity: pd.Series,
    *,
    initial_capital: float,
    annualization_days: int = 365,
    exposure_pct: float | None = None,
    benchmark: pd.Series | None = None,
) -> EquityStats:
    """Backtest statistics on an equity curve (UTC DatetimeIndex, 1m/1h/1d samples, values = equity
    at each sample's close), computed as quantstats does on daily returns with periods=annualization_days.

    Return, CAGR and drawdown use the series as given (intraday drawdowns count); volatility,
    Sharpe and Sortino use daily_returns(). CAGR annualises over the elapsed time, first label to
    last label plus one sampling step, which is the number of daily returns for whole days.
    """
    _check_statistics_args(initial_capital, annualization_days)
    ms, vals = _series_ms(equity, "equity")
    bvals = None
    if benchmark is not None and len(benchmark) > 0:
        bvals = np.asarray(benchmark.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    return _statistics(ms, vals, _step_ms(equity, ms), initial_capital, annualization_days, exposure_pct, bvals)


def equity_statistics_of(
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
    *,
    initial_capital: float,
    annualization_days: int = 365,
    exposure_pct: float | None = None,
    benchmark: NDArray[np.float64] | None = None,
) -> EquityStats:
    """equity_statistics on arrays (numpy only): equity `values` sampled at the ms `timestamps`
    of resampled_last, the benchmark's prices as an array."""
    _check_statistics_args(initial_capital, annualization_days)
    ms = _check_timestamps(timestamps)
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != ms.shape:
        raise ValidationError(f"equity has shape {vals.shape}, timestamps {ms.shape}")
    if not np.all(np.isfinite(vals)):
        raise ValidationError("equity must be finite (no NaN/inf)")
    step = int(np.min(np.diff(ms))) if ms.shape[0] > 1 else None
    bvals = None if benchmark is None or len(benchmark) == 0 else np.asarray(benchmark, dtype=np.float64)
    return _statistics(ms, vals, step, initial_capital, annualization_days, exposure_pct, bvals)


def _check_statistics_args(initial_capital: float, annualization_days: int) -> None:
    if not (math.isfinite(initial_capital) and initial_capital > 0):
        raise ValidationError("initial_capital must be finite and > 0")
    if annualization_days <= 0:
        raise ValidationError("annualization_days must be > 0")


def _statistics(ms: NDArray[np.int64], vals: NDArray[np.float64], step: int | None, initial_capital: float,
                annualization_days: int, exposure_pct: float | None,
                bvals: NDArray[np.float64] | None) -> EquityStats:
    final = float(vals[-1])
    growth = final / initial_capital
    total_return = growth - 1.0

    cagr: float | None = None
    if step is not None and step > 0:
        years = (int(ms[-1] - ms[0]) + step) / DAY_MS / annualization_days
        # Negative equity has no real growth rate (quantstats reports NaN there too).
        if growth >= 0:
            try:
                cagr = _finite_or_none(growth ** (1.0 / years) - 1.0)
            except OverflowError:  # minutes of gains annualised: no meaningful figure
                cagr = None

    max_dd, dd_ms = _drawdown(ms, vals, initial_capital, step or 0)

    _, r = _daily_arrays(ms, vals, initial_capital)
    vol = sharpe = sortino = None
    if r.shape[0] >= 2 and np.all(np.isfinite(r)):
        # Sample standard deviation (ddof=1), as quantstats' volatility and sharpe (pandas .std()).
        std = float(np.std(r, ddof=1))
        mean = float(np.mean(r))
        vol = std * math.sqrt(annualization_days)
        if std > _ZERO_STD:
            sharpe = mean / std * math.sqrt(annualization_days)
    if r.shape[0] >= 1 and np.all(np.isfinite(r)):
        # quantstats' downside deviation: root mean square of the negative returns over ALL days.
        downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / r.shape[0])
        if downside > _ZERO_STD:
            sortino = float(np.mean(r)) / downside * math.sqrt(annualization_days)

    calmar = cagr / max_dd if cagr is not None and max_dd > 0 else None

    bh: float | None = None
    if bvals is not None:
        bvals = bvals[np.isfinite(bvals)]
        if bvals.shape[0] > 0 and bvals[0] > 0:
            bh = (float(bvals[-1]) / float(bvals[0]) - 1.0) * 100.0

    def pct(x: float | None) -> float | None:
        return None if x is None else _finite_or_none(x * 100.0)

    return EquityStats(
        initial_capital=float(initial_capital),
        final_equity=final,
        total_return_pct=total_return * 100.0,
        cagr_pct=pct(cagr),
        max_drawdown_pct=max_dd * 100.0,
        max_drawdown_duration_days=dd_ms / DAY_MS,
        volatility_ann_pct=pct(vol),
        sharpe=_finite_or_none(sharpe) if sharpe is not None else None,
        sortino=_finite_or_none(sortino) if sortino is not None else None,
        calmar=_finite_or_none(calmar) if calmar is not None else None,
        exposure_pct=None if exposure_pct is None else _finite_or_none(float(exposure_pct)),
        buy_and_hold_return_pct=bh,
    )
