"""1m candles from files (CSV, npz, Parquet) and the bundled demo data, checked for the engine."""

from __future__ import annotations

import csv
from datetime import datetime
from importlib import resources
from pathlib import Path

import numpy as np

from ._time import MINUTE_MS, iso, to_ms
from .errors import ValidationError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
DEMO_FILE = "demo_candles_1m.npz"


class CandleFileError(ValidationError):
    """A candle file that cannot be used; the message says why."""


def load_candles(path: Path) -> np.ndarray:
    """Read 1m candles as an (n, 6) float64 array sorted by time, validated for the engine."""
    readers = {".csv": _read_csv, ".npz": _read_npz, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise CandleFileError(f"{path}: unsupported file type {path.suffix!r}; "
                              f"use one of {', '.join(readers)}")
    return check_candles(reader(path), path)


def _column_order(header: list[str], path: Path) -> list[int]:
    """Index of each of COLUMNS in a header (case-insensitive, any order)."""
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise CandleFileError(f"{path}: missing column(s) {', '.join(missing)}; expected a header "
                              f"{','.join(COLUMNS)} (found {','.join(names) or 'nothing'})")
    return [names.index(c) for c in COLUMNS]


def _timestamp(text: str) -> float:
    """Epoch milliseconds from a number or from ISO-8601 text (naive = UTC)."""
    try:
        return float(text)
    except ValueError:
        return float(to_ms(datetime.fromisoformat(text.strip())))


def _read_csv(path: Path) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        order = _column_order(next(reader, []), path)
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append([_timestamp(row[order[0]])] + [float(row[i]) for i in order[1:]])
            except (ValueError, IndexError) as e:
                raise CandleFileError(f"{path}, line {line}: cannot read {row!r} ({e})") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _read_npz(path: Path) -> np.ndarray:
    """Arrays named after COLUMNS, or a single (n, 6) array in COLUMNS order."""
    with np.load(path) as npz:
        if all(c in npz.files for c in COLUMNS):
            return np.column_stack([np.asarray(npz[c], dtype=np.float64) for c in COLUMNS])
        if len(npz.files) == 1 and npz[npz.files[0]].ndim == 2 and npz[npz.files[0]].shape[1] == 6:
            return np.asarray(npz[npz.files[0]], dtype=np.float64)
        raise CandleFileError(f"{path}: expected arrays {', '.join(COLUMNS)} or one (n, 6) array; "
                              f"found {', '.join(npz.files) or 'no arrays'}")


def _read_parquet(path: Path) -> np.ndarray:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CandleFileError(f"{path}: reading .parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    order = _column_order(table.column_names, path)
    columns = [table.column(i) for i in order]
    ts = columns[0]
    if pa.types.is_timestamp(ts.type) or pa.types.is_date(ts.type):  # -> epoch ms
        ts = ts.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.column_stack([np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64)
                            for c in [ts] + columns[1:]])


def check_candles(arr: np.ndarray, path: Path | str) -> np.ndarray:
    """Sort by time; reject empty, non-finite, non-positive, duplicate or non-1m candles."""
    if len(arr) == 0:
        raise CandleFileError(f"{path}: no candles")
    if not np.isfinite(arr).all():
        raise CandleFileError(f"{path}: contains empty, NaN or infinite values")
    if (arr[:, 1:5] <= 0).any() or (arr[:, 5] < 0).any():
        raise CandleFileError(f"{path}: prices must be > 0 and volumes >= 0")
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    if (arr[:, 0] % MINUTE_MS).any():
        raise CandleFileError(f"{path}: timestamps must be epoch milliseconds on minute boundaries "
                              f"(first is {arr[0, 0]:.0f})")
    steps = np.diff(arr[:, 0])
    if len(steps) and steps.min() == 0:
        raise CandleFileError(f"{path}: duplicate timestamp {iso(int(arr[np.argmin(steps), 0]))}")
    if len(steps) and steps.min() != MINUTE_MS:
        raise CandleFileError(f"{path}: candles must be 1m (closest spacing is "
                              f"{steps.min() / MINUTE_MS:g} min)")
    return arr


def demo_candles() -> np.ndarray:
    """The bundled 45 days of synthetic 1m candles."""
    with resources.files("backtest_kit").joinpath("data", DEMO_FILE).open("rb") as f:
        with np.load(f) as npz:
            return np.column_stack([npz[c] for c in COLUMNS])
