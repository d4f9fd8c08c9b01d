"""On-disk candle store: month-partitioned Parquet per (exchange, symbol, interval) plus the covered time ranges.

Layout: <root>/<exchange>/<symbol>/<interval>/<YYYY-MM>.parquet, coverage.json and .lock in the series dir.
pyarrow is imported on first use, so `import backtest_kit` works without it (`pip install 'backtest-kit[parquet]'`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import CandleError, ValidationError

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000,
}
COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
COVERAGE_FILE = "coverage.json"
LOCK_FILE = ".lock"
_FORMAT = 1
_PARTITION_RE = re.compile(r"^(\d{4})-(\d{2})\.parquet$")
_TEMP_RE = re.compile(r"^\..+\.tmp$")
_SAFE_RE = re.compile(r"[A-Za-z0-9._-]")
_ESCAPE_RE = re.compile(r"%([0-9A-F]{2})")
# Year 0000..9999 keeps partition names at a fixed width.
_MAX_TS = int(np.datetime64("10000-01-01T00:00:00", "ms").astype(np.int64))

Range = tuple[int, int]
Columns = dict[str, npt.NDArray[Any]]


class StoreLockTimeout(CandleError, TimeoutError):
    """Another process held a series lock for longer than the store's lock_timeout."""


@dataclass(frozen=True)
class SeriesInfo:
    """One stored series, as listed by CandleStore.entries(); unpacks like a tuple in field order."""

    exchange: str
    symbol: str
    interval: str
    first_ts: int | None
    last_ts: int | None
    count: int
    covered: tuple[Range, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter(astuple(self))


# --- names ------------------------------------------------------------------------------------------------------


def encode_name(name: str) -> str:
    """A path component for `name`: [A-Za-z0-9._-] kept, every other UTF-8 byte and a leading '.' as %XX."""
    out = []
    for i, ch in enumerate(name):
        if _SAFE_RE.fullmatch(ch) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode_name(component: str) -> str | None:
    """Inverse of encode_name; None for a component encode_name could not have produced."""
    try:
        raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), component).encode("latin-1")
        name = raw.decode("utf-8", "surrogatepass")
    except UnicodeError:
        return None
    return name if name and encode_name(name) == component else None


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"CandleStore: {what} must be a non-empty str, got {name!r}")
    encoded = encode_name(name)
    if len(encoded.encode()) > 255:  # NAME_MAX on common filesystems
        raise ValidationError(f"CandleStore: {what} {name!r} is too long for a directory name")
    return encoded


def interval_ms(interval: object) -> int:
    """Step of `interval` in ms; ValidationError naming the known intervals otherwise."""
    step = INTERVAL_MS.get(interval) if isinstance(interval, str) else None
    if step is None:
        raise ValidationError(f"CandleStore: unknown interval {interval!r}; expected one of {', '.join(INTERVAL_MS)}")
    return step


def _as_ms(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"CandleStore: {what} must be an int (epoch ms), got {value!r}")
    return int(value)


# --- ranges -----------------------------------------------------------------------------------------------------


def union(ranges: list[Range]) -> list[Range]:
    """Sorted, disjoint, non-touching union of half-open ranges (empty ones dropped)."""
    out: list[Range] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def subtract(start: int, end: int, covered: list[Range]) -> list[Range]:
    """Parts of [start, end) outside the sorted disjoint `covered` ranges."""
    out: list[Range] = []
    cursor = start
    for lo, hi in covered:
        if hi <= cursor:
            continue
        if lo >= end:
            break
        if lo > cursor:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        out.append((cursor, end))
    return out


def _runs(ts: npt.NDArray[np.int64], step: int) -> list[Range]:
    """Ranges [first, last + step) of consecutive open times in sorted unique `ts`."""
    if ts.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(ts) != step)
    starts = np.concatenate((ts[:1], ts[breaks + 1]))
    ends = np.concatenate((ts[breaks], ts[-1:])) + step
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _align_up(t: int, step: int) -> int:
    return -((-t) // step) * step


# --- columns ----------------------------------------------------------------------------------------------------


def _empty() -> Columns:
    return {"timestamp": np.empty(0, dtype=np.int64), **{c: np.empty(0, dtype=np.float64) for c in COLUMNS[1:]}}


def _timestamps(raw: npt.NDArray[Any], series: str) -> npt.NDArray[np.int64]:
    if raw.dtype.kind in "iu":
        ts = raw.astype(np.int64)
    elif raw.dtype.kind == "f":
        bad = ~np.isfinite(raw)
        if bad.any():
            raise ValidationError(f"CandleStore {series}: timestamp is not finite at row {int(np.argmax(bad))}")
        frac = raw != np.floor(raw)
        if frac.any():
            raise ValidationError(f"CandleStore {series}: timestamp {raw[np.argmax(frac)]!r} is not whole ms")
        if np.abs(raw).max(initial=0) >= 2.0**62:
            raise ValidationError(f"CandleStore {series}: timestamp out of range")
        ts = raw.astype(np.int64)
    else:
        raise ValidationError(f"CandleStore {series}: timestamps must be numeric, got dtype {raw.dtype}")
    out_of_range = (ts < 0) | (ts >= _MAX_TS)
    if out_of_range.any():
        raise ValidationError(f"CandleStore {series}: timestamp {int(ts[np.argmax(out_of_range)])} is outside "
                              "year 1970..9999")
    return ts


def _columns(candles: object, series: str) -> Columns:
    """Validated columns (timestamp int64, the rest float64) from an (n, 6) array, rows or a column mapping."""
    # A DataFrame goes by column name: np.asarray would take its columns in whatever order they happen to be.
    if isinstance(candles, Mapping) or hasattr(candles, "columns"):
        absent = [c for c in COLUMNS if c not in candles]  # type: ignore[operator]
        if absent:
            raise ValidationError(f"CandleStore {series}: candles mapping lacks column(s) {', '.join(absent)}")
        raw = {c: np.asarray(candles[c]) for c in COLUMNS}  # type: ignore[index]
        lengths = {c: a.shape for c, a in raw.items()}
        if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
            raise ValidationError(f"CandleStore {series}: columns must be 1-D and of equal length, got {lengths}")
        ts_raw = raw["timestamp"]
        try:
            values = {c: raw[c].astype(np.float64) for c in COLUMNS[1:]}
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"CandleStore {series}: non-numeric price/volume column: {exc}") from None
    else:
        try:
            arr = np.asarray(candles, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"CandleStore {series}: candles are not a numeric (n, 6) array: {exc}") from None
        if arr.size == 0:
            return _empty()
        if arr.ndim != 2 or arr.shape[1] != 6:
            raise ValidationError(f"CandleStore {series}: candles must have shape (n, 6), got {arr.shape}")
        ts_raw = arr[:, 0]
        values = {c: np.ascontiguousarray(arr[:, i]) for i, c in enumerate(COLUMNS[1:], start=1)}
    return {"timestamp": _timestamps(ts_raw, series), **values}


def _sort_unique_last(cols: Columns) -> Columns:
    """Rows sorted by timestamp; of rows sharing a timestamp the last one given wins."""
    ts = cols["timestamp"]
    if ts.size > 1 and not bool((np.diff(ts) > 0).all()):
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        keep = np.ones(ts.size, dtype=np.bool_)
        keep[:-1] = ts[1:] != ts[:-1]
        idx = order[keep]
        return {c: v[idx] for c, v in cols.items()}
    return cols


def _month_index(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Months since 1970-01 of each open time (UTC)."""
    return ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)


def _month_start(month: int) -> int:
    return int(np.datetime64(month, "M").astype("datetime64[ms]").astype(np.int64))


def _month_name(month: int) -> str:
    return f"{1970 + month // 12:04d}-{month % 12 + 1:02d}.parquet"


# --- pyarrow, on first use ------------------------------------------------------------------------------------


def _arrow() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or a CandleError saying how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CandleError("CandleStore needs pyarrow: pip install 'backtest-kit[parquet]'") from None
    return pa, pq


def _schema() -> Any:
    pa, _ = _arrow()
    return pa.schema([("timestamp", pa.int64())] + [(name, pa.float64()) for name in COLUMNS[1:]])


# --- files ------------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(target: Path) -> Path:
    # Leading dot + .tmp suffix: never matches a partition name, so readers skip it.
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(tmp: Path, target: Path) -> None:
    """Durable temp file content, then an atomic rename over target."""
    _fsync_file(tmp)
    os.replace(tmp, target)


def _read_partition(path: Path, month: int | None) -> Columns:
    """All rows of one partition file, checked: schema, no nulls, strictly increasing, inside its month."""
    pa, pq = _arrow()
    schema = _schema()
    try:
        # One open file for footer and data: opening the path twice could mix two versions across a replace.
        with pa.OSFile(str(path)) as source:
            table = pq.read_table(source, use_threads=False)
    except FileNotFoundError:
        return _empty()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CandleError(f"CandleStore: cannot read partition {path}: {exc}") from None
    if table.schema.names != list(COLUMNS) or any(table.schema.field(c).type != schema.field(c).type
                                                    for c in COLUMNS):
        found = ", ".join(f"{f.name} {f.type}" for f in table.schema)
        raise CandleError(f"CandleStore: partition {path} has columns ({found}), expected timestamp int64 and "
                          "open, high, low, close, volume float64")
    if table.column("timestamp").null_count:
        raise CandleError(f"CandleStore: partition {path} has null timestamps")
    cols: Columns = {c: table.column(c).to_numpy() for c in COLUMNS}
    ts = cols["timestamp"]
    if ts.size > 1 and not bool((np.diff(ts) > 0).all()):
        raise CandleError(f"CandleStore: partition {path} has unsorted or duplicate timestamps")
    if month is not None and ts.size and (int(ts[0]) < _month_start(month) or int(ts[-1]) >= _month_start(month + 1)):
        raise CandleError(f"CandleStore: partition {path} holds timestamps outside its month")
    return cols


def _write_partition(path: Path, cols: Columns) -> None:
    pa, pq = _arrow()
    tmp = _temp_path(path)
    try:
        table = pa.Table.from_arrays([pa.array(cols[c]) for c in COLUMNS], schema=_schema())
        pq.write_table(table, tmp, compression="zstd")
        _replace(tmp, path)
    except (pa.ArrowException, OSError) as exc:
        raise CandleError(f"CandleStore: cannot write partition {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read_coverage(path: Path) -> list[Range]:
    return _read_coverage_doc(path)[0]


def _read_coverage_doc(path: Path) -> tuple[list[Range], int | None]:
    """(covered ranges, data end): the optional "end" is the open time from which the venue had no candles,
    as found when the covered range after it was written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        raise CandleError(f"CandleStore: cannot read coverage {path}: {exc}") from None
    try:
        doc = json.loads(text)
        ranges = doc["ranges"]
        out = [(int(lo), int(hi)) for lo, hi in ranges]
        end = doc.get("end")
        if doc.get("format") != _FORMAT or any(type(x) is not int for r in ranges for x in r):
            raise ValueError("unexpected format")
        if end is not None and type(end) is not int:
            raise ValueError("end is not an int")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CandleError(f"CandleStore: coverage file {path} is corrupt ({exc})") from None
    if out != union(out):
        raise CandleError(f"CandleStore: coverage file {path} is corrupt (ranges not sorted and disjoint)")
    return out, end


def _write_coverage(path: Path, interval: str, ranges: list[Range], end: int | None = None) -> None:
    tmp = _temp_path(path)
    doc: dict[str, Any] = {"format": _FORMAT, "interval": interval, "ranges": [list(r) for r in ranges]}
    if end is not None:
        doc["end"] = end
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        _replace(tmp, path)
    except OSError as exc:
        raise CandleError(f"CandleStore: cannot write coverage {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- the store --------------------------------------------------------------------------------------------------


class CandleStore:
    """Closed candles on disk per (exchange, symbol, interval), with the time ranges already asked of the venue."""

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 60.0, read_only: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ValidationError(f"CandleStore: path must be a str or PathLike, got {path!r}")
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float) or not lock_timeout >= 0:
            raise ValidationError(f"CandleStore: lock_timeout must be a number >= 0, got {lock_timeout!r}")
        if not isinstance(read_only, bool):
            raise ValidationError(f"CandleStore: read_only must be a bool, got {read_only!r}")
        self.root = Path(path).absolute()
        self.lock_timeout = float(lock_timeout)
        self.read_only = read_only  # an exchange in front of it reads but never writes (offline runs)

    def __repr__(self) -> str:
        extra = ", read_only=True" if self.read_only else ""
        return f"CandleStore({str(self.root)!r}{extra})"

    def series_dir(self, exchange: str, symbol: str, interval: str) -> Path:
        """Directory of one series (not created)."""
        interval_ms(interval)
        return self.root / _check_name("exchange", exchange) / _check_name("symbol", symbol) / interval

    @staticmethod
    def _label(exchange: str, symbol: str, interval: str) -> str:
        return f"{exchange}/{symbol}/{interval}"

    # --- writing ------------------------------------------------------------------------------------------------

    def write(self, exchange: str, symbol: str, interval: str, candles: object, *,
              covered: tuple[int, int] | None = None, now_ms: int | None = None, data_end: int | None = None) -> int:
        """Merge candles into their month partitions (new rows replace stored ones on the same timestamp).

        Candles not closed by `now_ms` (default: the wall clock) are dropped. `covered=(lo, hi)` is the open-time
        range the fetch answered for: it joins the coverage even where it holds no candle, so `missing` never
        asks for it again; it is clipped to closed steps. `data_end` records the open time from which the venue
        has no candles (found explicitly; see data_end()); a later write of a candle at or after it clears it.
        Returns the number of candles stored.
        """
        if self.read_only:
            raise ValidationError(f"CandleStore {self.root}: opened read_only; write refused")
        directory = self.series_dir(exchange, symbol, interval)
        series = self._label(exchange, symbol, interval)
        step = INTERVAL_MS[interval]
        now = int(time.time() * 1000) if now_ms is None else _as_ms("now_ms", now_ms)
        closed_until = now // step * step  # open times below this are closed candles
        cover: Range | None = None
        if covered is not None:
            if not isinstance(covered, tuple | list) or len(covered) != 2:
                raise ValidationError(f"CandleStore {series}: covered must be a (lo, hi) pair, got {covered!r}")
            lo, hi = _as_ms("covered[0]", covered[0]), _as_ms("covered[1]", covered[1])
            if lo > hi:
                raise ValidationError(f"CandleStore {series}: covered ({lo}, {hi}) has lo > hi")
            cover = (_align_up(max(lo, 0), step), min(_align_up(hi, step), closed_until, _MAX_TS))
        cols = _sort_unique_last(_columns(candles, series))
        ts = cols["timestamp"]
        misaligned = ts % step != 0
        if misaligned.any():
            raise ValidationError(f"CandleStore {series}: timestamp {int(ts[np.argmax(misaligned)])} is not a "
                                  f"multiple of the {interval} step")
        keep = ts < closed_until
        if not keep.all():
            cols = {c: v[keep] for c, v in cols.items()}
            ts = cols["timestamp"]
        new_cover = union(_runs(ts, step) + ([cover] if cover else []))
        end = None if data_end is None else _align_up(_as_ms("data_end", data_end), step)
        if not new_cover and end is None:
            return 0
        self._ensure_dir(directory)
        with self._lock(directory):
            self._clean_temps(directory)
            months = _month_index(ts)
            cuts = np.flatnonzero(np.diff(months)) + 1
            starts = np.concatenate(([0], cuts)).tolist()
            ends = np.concatenate((cuts, [ts.size])).tolist()
            for a, b in zip(starts, ends, strict=True):
                if a == b:
                    continue
                month = int(months[a])
                path = directory / _month_name(month)
                part = {c: v[a:b] for c, v in cols.items()}
                old = _read_partition(path, month)
                if old["timestamp"].size:
                    part = _sort_unique_last({c: np.concatenate((old[c], part[c])) for c in COLUMNS})
                _write_partition(path, part)
            # Partitions are durable before coverage claims them: a crash in between only costs a refetch.
            _fsync_dir(directory)
            coverage_path = directory / COVERAGE_FILE
            old_cover, old_end = _read_coverage_doc(coverage_path)
            merged = union(old_cover + new_cover)
            end = old_end if end is None else end
            if end is not None and ts.size and int(ts[-1]) >= end:
                end = None  # candles after the recorded end: the venue has data there after all
            _write_coverage(coverage_path, interval, merged, end)
            _fsync_dir(directory)
        return int(ts.size)

    def _ensure_dir(self, directory: Path) -> None:
        if directory.is_dir():
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # New directory entries are durable only once their parents are synced.
            for parent in (directory.parent.parent.parent, directory.parent.parent, directory.parent):
                _fsync_dir(parent)
        except OSError as exc:
            raise CandleError(f"CandleStore: cannot create series directory {directory}: {exc}") from None

    @contextlib.contextmanager
    def _lock(self, directory: Path) -> Iterator[None]:
        """Exclusive flock on <series>/.lock, polled until lock_timeout."""
        path = directory / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CandleError(f"CandleStore: cannot open lock file {path}: {exc}") from None
        try:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise CandleError(f"CandleStore: cannot lock {path}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise StoreLockTimeout(f"CandleStore: lock {path} still held by another writer after "
                                           f"{self.lock_timeout:g} s")
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @staticmethod
    def _clean_temps(directory: Path) -> None:
        """Remove temp files of killed writers (called under the lock, when no live writer has one open)."""
        for entry in os.scandir(directory):
            if _TEMP_RE.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    # --- reading ------------------------------------------------------------------------------------------------

    def read(self, exchange: str, symbol: str, interval: str, start_ms: int, end_ms: int) -> Columns:
        """Stored candles with start_ms <= open time < end_ms as columns timestamp (int64), open..volume (float64).

        Opens only the month partitions overlapping the range. Lock-free: each partition is replaced atomically.
        """
        directory = self.series_dir(exchange, symbol, interval)
        start, end = _as_ms("start_ms", start_ms), _as_ms("end_ms", end_ms)
        start, end = max(start, 0), min(end, _MAX_TS)
        if start >= end:
            return _empty()
        first, last = (int(m) for m in _month_index(np.array([start, end - 1], dtype=np.int64)))
        chunks: list[Columns] = []
        for month in range(first, last + 1):
            part = _read_partition(directory / _month_name(month), month)
            ts = part["timestamp"]
            if not ts.size:
                continue
            a = int(np.searchsorted(ts, start, "left")) if month == first else 0
            b = int(np.searchsorted(ts, end, "left")) if month == last else ts.size
            if a < b:
                chunks.append({c: v[a:b] for c, v in part.items()})
        if not chunks:
            return _empty()
        # concatenate also copies, so callers get writable arrays that do not pin Arrow buffers
        return {c: np.concatenate([ch[c] for ch in chunks]) for c in COLUMNS}

    def coverage(self, exchange: str, symbol: str, interval: str) -> list[Range]:
        """Covered open-time ranges [lo, hi) of a series: stored candles plus ranges the venue answered empty."""
        return _read_coverage(self.series_dir(exchange, symbol, interval) / COVERAGE_FILE)

    def data_end(self, exchange: str, symbol: str, interval: str) -> int | None:
        """The open time from which the venue had no candles (up to the end of the covered range holding it),
        recorded by an exchange client that found the end of the data; None if never found."""
        return _read_coverage_doc(self.series_dir(exchange, symbol, interval) / COVERAGE_FILE)[1]

    def missing(self, exchange: str, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[Range]:
        """Step-aligned sub-ranges of the open times in [start_ms, end_ms) that are not covered yet."""
        step = interval_ms(interval)
        start, end = _as_ms("start_ms", start_ms), _as_ms("end_ms", end_ms)
        start, end = _align_up(max(start, 0), step), _align_up(min(end, _MAX_TS), step)
        if start >= end:
            return []
        return subtract(start, end, self.coverage(exchange, symbol, interval))

    def entries(self) -> list[SeriesInfo]:
        """Every series under the root with its first/last open time, candle count and coverage."""
        out: list[SeriesInfo] = []
        for ex_dir in self._subdirs(self.root):
            for sym_dir in self._subdirs(ex_dir):
                for iv_dir in self._subdirs(sym_dir):
                    exchange, symbol = decode_name(ex_dir.name), decode_name(sym_dir.name)
                    if exchange is None or symbol is None or iv_dir.name not in INTERVAL_MS:
                        continue  # not written by this store
                    out.append(self._info(exchange, symbol, iv_dir))
        out.sort(key=lambda e: (e.exchange, e.symbol, INTERVAL_MS[e.interval]))
        return out

    @staticmethod
    def _subdirs(path: Path) -> list[Path]:
        try:
            return sorted(Path(e.path) for e in os.scandir(path)
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CandleError(f"CandleStore: cannot list {path}: {exc}") from None

    @staticmethod
    def _info(exchange: str, symbol: str, directory: Path) -> SeriesInfo:
        """Counts and first/last open time from Parquet footers (row-group statistics), not from the data."""
        months = sorted(e.name for e in os.scandir(directory) if _PARTITION_RE.match(e.name))
        count = 0
        first: int | None = None
        last: int | None = None
        pa, pq = _arrow()
        for name in months:
            path = directory / name
            try:
                with pa.OSFile(str(path)) as source:
                    meta = pq.ParquetFile(source).metadata
                n = meta.num_rows
                if n:
                    groups = [meta.row_group(i).column(0).statistics for i in range(meta.num_row_groups)]
                    if all(s is not None and s.has_min_max for s in groups):
                        lo, hi = min(int(s.min) for s in groups), max(int(s.max) for s in groups)
                    else:
                        ts = _read_partition(path, None)["timestamp"]
                        lo, hi = int(ts[0]), int(ts[-1])
                    first = lo if first is None else first
                    last = hi
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise CandleError(f"CandleStore: cannot read partition {path}: {exc}") from None
            count += n
        covered = tuple(_read_coverage(directory / COVERAGE_FILE))
        return SeriesInfo(exchange, symbol, directory.name, first, last, count, covered)


__all__ = ["COLUMNS", "INTERVAL_MS", "CandleStore", "SeriesInfo", "StoreLockTimeout",
           "decode_name", "encode_name", "interval_ms"]
