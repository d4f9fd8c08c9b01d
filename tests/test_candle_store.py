"""CandleStore: Parquet month partitions, coverage, safe names, locking and corrupt files, on real files."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest_kit._store import (
    COLUMNS,
    COVERAGE_FILE,
    LOCK_FILE,
    CandleStore,
    SeriesInfo,
    StoreLockTimeout,
    decode_name,
    encode_name,
)
from backtest_kit.errors import BacktestKitError, CandleError, ValidationError

M = 60_000
H = 3_600_000
FEB = 1_706_745_600_000   # 2024-02-01T00:00:00Z
MAR = 1_709_251_200_000   # 2024-03-01T00:00:00Z
FAR = 4_000_000_000_000   # a "now" after every candle in these tests
SRC = Path(__file__).resolve().parents[1] / "src"


def candles(first_ms: int, n: int, step: int = M, price: float = 100.0) -> np.ndarray:
    """n distinct candles from first_ms: open price + i, high +1, low -1, close +0.5, volume i + 1."""
    i = np.arange(n, dtype=np.float64)
    p = price + i
    return np.column_stack([first_ms + np.arange(n) * step, p, p + 1, p - 1, p + 0.5, i + 1])


def as_rows(cols: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([cols[c].astype(np.float64) for c in COLUMNS])


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "store")


def partitions(store: CandleStore, exchange: str = "ex", symbol: str = "BTCUSDT", interval: str = "1m") -> list[str]:
    return sorted(p.name for p in store.series_dir(exchange, symbol, interval).iterdir() if p.suffix == ".parquet")


# --- round trip, partitions, merge ----------------------------------------------------------------------------


def test_round_trip_array_dict_and_rows(store: CandleStore):
    data = candles(FEB, 100)
    assert store.write("ex", "BTCUSDT", "1m", data, now_ms=FAR) == 100
    out = store.read("ex", "BTCUSDT", "1m", FEB, FEB + 100 * M)
    assert list(out) == list(COLUMNS)
    assert out["timestamp"].dtype == np.int64 and all(out[c].dtype == np.float64 for c in COLUMNS[1:])
    np.testing.assert_array_equal(as_rows(out), data)
    assert out["close"].flags.writeable

    cols = {"timestamp": data[:, 0].astype(np.int64), **{c: data[:, i] for i, c in enumerate(COLUMNS[1:], 1)}}
    store.write("ex", "ETHUSDT", "1m", cols, now_ms=FAR)
    store.write("ex", "SOLUSDT", "1m", data.tolist(), now_ms=FAR)
    frame = pd.DataFrame(cols)[["close", "timestamp", "volume", "low", "open", "high"]]  # taken by column name
    store.write("ex", "XRPUSDT", "1m", frame, now_ms=FAR)
    for sym in ("ETHUSDT", "SOLUSDT", "XRPUSDT"):
        np.testing.assert_array_equal(as_rows(store.read("ex", sym, "1m", 0, FAR)), data)
    # bounds: start inclusive, end exclusive
    np.testing.assert_array_equal(store.read("ex", "BTCUSDT", "1m", FEB + 10 * M, FEB + 20 * M)["timestamp"],
                                  FEB + np.arange(10, 20) * M)
    assert store.read("ex", "BTCUSDT", "1m", FEB + 5 * M, FEB + 5 * M)["timestamp"].size == 0
    assert store.read("ex", "NOPE", "1m", 0, FAR)["open"].size == 0


def test_month_partitions_on_disk_and_reads_open_only_overlapping_months(store: CandleStore):
    data = candles(MAR - 90 * M, 180)   # 90 candles in February, 90 in March
    store.write("ex", "BTCUSDT", "1m", data, now_ms=FAR)
    assert partitions(store) == ["2024-02.parquet", "2024-03.parquet"]
    directory = store.series_dir("ex", "BTCUSDT", "1m")
    feb = pq.read_table(directory / "2024-02.parquet")
    mar = pq.read_table(directory / "2024-03.parquet")
    assert feb.schema.names == list(COLUMNS) and feb.schema.field("timestamp").type == pa.int64()
    assert feb.num_rows == 90 and feb.column("timestamp")[-1].as_py() == MAR - M
    assert mar.num_rows == 90 and mar.column("timestamp")[0].as_py() == MAR
    np.testing.assert_array_equal(as_rows(store.read("ex", "BTCUSDT", "1m", MAR - 10 * M, MAR + 10 * M)),
                                  data[80:100])
    # A March-only read never opens February: it still works with February destroyed.
    (directory / "2024-02.parquet").write_bytes(b"garbage")
    assert store.read("ex", "BTCUSDT", "1m", MAR, MAR + H)["timestamp"].size == 60
    with pytest.raises(CandleError, match="2024-02.parquet"):
        store.read("ex", "BTCUSDT", "1m", MAR - H, MAR + H)


def test_merge_new_values_replace_old_and_input_is_sorted(store: CandleStore):
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 50, price=100), now_ms=FAR)
    newer = candles(FEB + 40 * M, 20, price=500)[::-1]            # unsorted input, overlapping 10 stored rows
    store.write("ex", "BTCUSDT", "1m", newer, now_ms=FAR)
    out = store.read("ex", "BTCUSDT", "1m", FEB, FAR)
    np.testing.assert_array_equal(out["timestamp"], FEB + np.arange(60) * M)
    assert (out["open"][:40] == 100 + np.arange(40)).all()
    assert (out["open"][40:] == 500 + np.arange(20)).all()
    # duplicates inside one write: the last row given wins
    dup = np.vstack([candles(FEB, 1, price=1), candles(FEB, 1, price=2)])
    store.write("ex", "BTCUSDT", "1m", dup, now_ms=FAR)
    assert store.read("ex", "BTCUSDT", "1m", FEB, FEB + M)["open"].tolist() == [2.0]
    assert store.read("ex", "BTCUSDT", "1m", FEB, FAR)["timestamp"].size == 60


def test_unclosed_candles_are_dropped_and_coverage_clipped(store: CandleStore):
    data = candles(FEB, 10, step=H)
    now = FEB + 7 * H + 30 * M          # the 07:00 candle closes at 08:00 > now
    assert store.write("ex", "BTCUSDT", "1h", data, covered=(FEB, FEB + 10 * H), now_ms=now) == 7
    assert store.read("ex", "BTCUSDT", "1h", 0, FAR)["timestamp"].tolist() == (FEB + np.arange(7) * H).tolist()
    assert store.coverage("ex", "BTCUSDT", "1h") == [(FEB, FEB + 7 * H)]
    assert store.missing("ex", "BTCUSDT", "1h", FEB, FEB + 10 * H) == [(FEB + 7 * H, FEB + 10 * H)]
    # closing exactly at now counts as closed
    assert store.write("ex", "BTCUSDT", "1h", data, now_ms=FEB + 8 * H) == 8
    # default now is the wall clock: a candle opening in the future is never stored
    assert store.write("ex", "FUT", "1m", candles(int(time.time() * 1000) // M * M + M, 3)) == 0
    assert not store.series_dir("ex", "FUT", "1m").exists()


def test_covered_empty_ranges_are_recorded_and_not_missing(store: CandleStore):
    # The venue answered [FEB, FEB + 100m) with candles only at minutes 20..29.
    store.write("ex", "BTCUSDT", "1m", candles(FEB + 20 * M, 10), covered=(FEB, FEB + 100 * M), now_ms=FAR)
    assert store.coverage("ex", "BTCUSDT", "1m") == [(FEB, FEB + 100 * M)]
    assert store.missing("ex", "BTCUSDT", "1m", FEB, FEB + 100 * M) == []
    assert store.missing("ex", "BTCUSDT", "1m", FEB - 5 * M, FEB + 105 * M) == [(FEB - 5 * M, FEB),
                                                                              (FEB + 100 * M, FEB + 105 * M)]
    # a fetch that returned nothing at all
    assert store.write("ex", "DELISTED", "1m", np.empty((0, 6)), covered=(FEB, MAR), now_ms=FAR) == 0
    assert store.missing("ex", "DELISTED", "1m", FEB, MAR) == []
    (info,) = [e for e in store.entries() if e.symbol == "DELISTED"]
    assert (info.first_ts, info.last_ts, info.count, info.covered) == (None, None, 0, ((FEB, MAR),))


def test_missing_returns_exact_aligned_subranges(store: CandleStore):
    assert store.missing("ex", "BTCUSDT", "1m", FEB, FEB + 10 * M) == [(FEB, FEB + 10 * M)]
    # candles written without `covered` cover exactly their own steps, holes stay missing
    store.write("ex", "BTCUSDT", "1m", np.vstack([candles(FEB + 10 * M, 5), candles(FEB + 30 * M, 5)]),
                now_ms=FAR)
    store.write("ex", "BTCUSDT", "1m", np.empty((0, 6)), covered=(FEB + 50 * M, FEB + 60 * M), now_ms=FAR)
    assert store.coverage("ex", "BTCUSDT", "1m") == [(FEB + 10 * M, FEB + 15 * M), (FEB + 30 * M, FEB + 35 * M),
                                                      (FEB + 50 * M, FEB + 60 * M)]
    assert store.missing("ex", "BTCUSDT", "1m", FEB, FEB + 70 * M) == [
        (FEB, FEB + 10 * M), (FEB + 15 * M, FEB + 30 * M), (FEB + 35 * M, FEB + 50 * M),
        (FEB + 60 * M, FEB + 70 * M)]
    # misaligned bounds: the open times inside [start, end) are those from align_up(start) to align_up(end)
    assert store.missing("ex", "BTCUSDT", "1m", FEB + 12 * M + 1, FEB + 31 * M + 1) == [(FEB + 15 * M, FEB + 30 * M)]
    assert store.missing("ex", "BTCUSDT", "1m", FEB + 11 * M, FEB + 14 * M) == []
    assert store.missing("ex", "BTCUSDT", "1m", FEB + 20 * M, FEB + 20 * M) == []
    # covered bounds are aligned the same way; touching ranges merge
    store.write("ex", "BTCUSDT", "1m", np.empty((0, 6)), covered=(FEB + 15 * M - 1, FEB + 29 * M + 1), now_ms=FAR)
    assert store.coverage("ex", "BTCUSDT", "1m")[0] == (FEB + 10 * M, FEB + 35 * M)


def test_second_identical_run_makes_zero_requests(store: CandleStore):
    """The read-through pattern the engine will use: fetch only `missing`, write back with `covered`."""
    venue = candles(FEB + 2 * H, 300)       # the venue has no data before FEB + 2h
    calls: list[tuple[int, int]] = []

    def run(start: int, end: int) -> np.ndarray:
        for lo, hi in store.missing("bin", "BTC/USDT", "1m", start, end):
            calls.append((lo, hi))
            rows = venue[(venue[:, 0] >= lo) & (venue[:, 0] < hi)]
            store.write("bin", "BTC/USDT", "1m", rows, covered=(lo, hi), now_ms=FAR)
        return as_rows(store.read("bin", "BTC/USDT", "1m", start, end))

    first = run(FEB, FEB + 4 * H)
    assert calls == [(FEB, FEB + 4 * H)]
    second = run(FEB, FEB + 4 * H)
    assert calls == [(FEB, FEB + 4 * H)]
    np.testing.assert_array_equal(first, second)
    run(FEB + H, FEB + 5 * H)
    assert calls[1:] == [(FEB + 4 * H, FEB + 5 * H)]


# --- names ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["BTC/USDT", "BTCUSDT", "../x", "..", ".", "/etc/passwd", "a\x00b", "C:\\x",
                                  "ETH€", "%41", "-._", ".hidden", "x" * 80])
def test_names_round_trip_and_stay_under_root(store: CandleStore, name: str):
    encoded = encode_name(name)
    assert decode_name(encoded) == name
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-%") for ch in encoded)
    assert encoded not in (".", "..") and not encoded.startswith(".")
    store.write(name, name, "1m", candles(FEB, 3), now_ms=FAR)
    directory = store.series_dir(name, name, "1m")
    assert directory.parent.parent.parent == store.root
    for path in store.root.rglob("*"):
        assert path.resolve().is_relative_to(store.root.resolve())
    (info,) = store.entries()
    assert (info.exchange, info.symbol, info.count) == (name, name, 3)
    assert store.read(name, name, "1m", 0, FAR)["timestamp"].size == 3


def test_similar_symbols_are_distinct_series(store: CandleStore):
    store.write("ex", "BTC/USDT", "1m", candles(FEB, 3, price=1), now_ms=FAR)
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 5, price=2), now_ms=FAR)
    assert sorted(p.name for p in (store.root / "ex").iterdir()) == ["BTC%2FUSDT", "BTCUSDT"]
    assert store.read("ex", "BTC/USDT", "1m", 0, FAR)["open"][0] == 1
    assert store.read("ex", "BTCUSDT", "1m", 0, FAR)["timestamp"].size == 5


def test_entries_lists_every_series(store: CandleStore):
    store.write("ex", "BTC/USDT", "1h", candles(FEB - 2 * H, 5, step=H), now_ms=FAR)
    store.write("ex", "BTC/USDT", "1m", candles(FEB, 10), covered=(FEB, FEB + 20 * M), now_ms=FAR)
    store.write("another", "X", "1d", candles(FEB, 40, step=24 * H), now_ms=FAR)
    (store.root / "stray-file.txt").write_text("not a series")
    (store.root / "ex" / "BTC%2FUSDT" / "7m").mkdir()
    assert store.entries() == [
        SeriesInfo("another", "X", "1d", FEB, FEB + 39 * 24 * H, 40, ((FEB, FEB + 40 * 24 * H),)),
        SeriesInfo("ex", "BTC/USDT", "1m", FEB, FEB + 9 * M, 10, ((FEB, FEB + 20 * M),)),
        SeriesInfo("ex", "BTC/USDT", "1h", FEB - 2 * H, FEB + 2 * H, 5, ((FEB - 2 * H, FEB + 3 * H),)),
    ]
    exchange, symbol, interval, first, last, count, covered = store.entries()[0]
    assert (exchange, interval, count) == ("another", "1d", 40)
    assert CandleStore(store.root / "absent").entries() == []


# --- errors ---------------------------------------------------------------------------------------------------


def test_bad_arguments_raise_validation_error(store: CandleStore):
    ok = candles(FEB, 3)
    nan_ts = ok.copy()
    nan_ts[1, 0] = np.nan
    frac_ts = ok.copy()
    frac_ts[0, 0] += 0.5
    cases = [
        (("ex", "BTCUSDT", "7m", ok), "unknown interval '7m'"),
        (("ex", "BTCUSDT", "1m", ok[:, :5]), r"shape \(n, 6\), got \(3, 5\)"),
        (("ex", "BTCUSDT", "1m", ok[0]), r"shape \(n, 6\)"),
        (("ex", "BTCUSDT", "1m", nan_ts), "not finite at row 1"),
        (("ex", "BTCUSDT", "1m", frac_ts), "not whole ms"),
        (("ex", "BTCUSDT", "1m", candles(FEB + 1, 2)), "not a multiple of the 1m step"),
        (("ex", "BTCUSDT", "1m", candles(-M, 2)), "outside year"),
        (("ex", "BTCUSDT", "1m", [["a"] * 6]), "not a numeric"),
        (("ex", "BTCUSDT", "1m", {"timestamp": [FEB], "open": [1.0]}), "lacks column"),
        (("ex", "BTCUSDT", "1m", {c: [FEB] * (2 if c == "low" else 1) for c in COLUMNS}), "equal length"),
        (("", "BTCUSDT", "1m", ok), "exchange must be a non-empty str"),
        (("ex", None, "1m", ok), "symbol must be a non-empty str"),
        (("ex", "y" * 300, "1m", ok), "too long"),
    ]
    for args, message in cases:
        with pytest.raises(ValidationError, match=message):
            store.write(*args, now_ms=FAR)
    for covered, message in [((5, 1), "lo > hi"), ((1, 2, 3), "pair"), ((1.5, 2), "covered"), ("ab", "pair")]:
        with pytest.raises(ValidationError, match=message):
            store.write("ex", "BTCUSDT", "1m", ok, covered=covered, now_ms=FAR)
    with pytest.raises(ValidationError, match="start_ms"):
        store.read("ex", "BTCUSDT", "1m", "2024", FAR)
    with pytest.raises(ValidationError, match="unknown interval"):
        store.missing("ex", "BTCUSDT", "1w", 0, FAR)
    with pytest.raises(ValidationError, match="lock_timeout"):
        CandleStore(store.root, lock_timeout=-1)
    assert not store.root.exists()  # nothing was written by a rejected call


def test_corrupt_partition_raises_candle_error_naming_the_file(store: CandleStore):
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 10), now_ms=FAR)
    path = store.series_dir("ex", "BTCUSDT", "1m") / "2024-02.parquet"
    path.write_bytes(path.read_bytes()[:-20])   # truncated: no valid footer
    for call in (lambda: store.read("ex", "BTCUSDT", "1m", FEB, FAR),
                 lambda: store.write("ex", "BTCUSDT", "1m", candles(FEB + 10 * M, 1), now_ms=FAR),
                 store.entries):
        with pytest.raises(CandleError, match=str(path)):
            call()
    # a valid Parquet file with the wrong columns
    pq.write_table(pa.table({"timestamp": [1.0], "open": [1.0]}), path)
    with pytest.raises(CandleError, match="2024-02.parquet has columns"):
        store.read("ex", "BTCUSDT", "1m", FEB, FAR)
    # rows out of order, or outside the file's month
    bad = candles(FEB, 3)[[0, 2, 1]]
    pq.write_table(pa.table({c: bad[:, i].astype(np.int64 if i == 0 else np.float64)
                             for i, c in enumerate(COLUMNS)}), path)
    with pytest.raises(CandleError, match="unsorted or duplicate"):
        store.read("ex", "BTCUSDT", "1m", FEB, FAR)
    bad = candles(MAR, 3)
    pq.write_table(pa.table({c: bad[:, i].astype(np.int64 if i == 0 else np.float64)
                             for i, c in enumerate(COLUMNS)}), path)
    with pytest.raises(CandleError, match="outside its month"):
        store.read("ex", "BTCUSDT", "1m", FEB, MAR)


def test_corrupt_coverage_raises_candle_error_naming_the_file(store: CandleStore):
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 10), now_ms=FAR)
    path = store.series_dir("ex", "BTCUSDT", "1m") / COVERAGE_FILE
    for text in ("{not json", '{"format": 1, "ranges": [[5, 1]]}', '{"format": 1, "ranges": [["a", 2]]}',
                 '{"format": 1}', '{"format": 1, "ranges": [[1, 5], [3, 9]]}', "[]"):
        path.write_text(text)
        with pytest.raises(CandleError, match=f"{path}.*corrupt"):
            store.missing("ex", "BTCUSDT", "1m", FEB, MAR)
    assert issubclass(CandleError, BacktestKitError)


def test_stale_temp_file_is_ignored_by_readers_and_cleaned_by_next_write(store: CandleStore):
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 10), now_ms=FAR)
    directory = store.series_dir("ex", "BTCUSDT", "1m")
    stale = [directory / ".2024-02.parquet.4242.deadbeef.tmp", directory / f".{COVERAGE_FILE}.4242.cafe.tmp"]
    for path in stale:
        path.write_bytes(b"half-written by a killed writer")
    assert store.read("ex", "BTCUSDT", "1m", FEB, FAR)["timestamp"].size == 10
    assert store.entries()[0].count == 10
    assert store.missing("ex", "BTCUSDT", "1m", FEB, FEB + 10 * M) == []
    store.write("ex", "BTCUSDT", "1m", candles(FEB + 10 * M, 5), now_ms=FAR)
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in directory.iterdir()) == [LOCK_FILE, "2024-02.parquet", COVERAGE_FILE]
    assert store.read("ex", "BTCUSDT", "1m", FEB, FAR)["timestamp"].size == 15


def test_lock_timeout_raises_library_error_naming_the_lock(store: CandleStore):
    store.write("ex", "BTCUSDT", "1m", candles(FEB, 1), now_ms=FAR)
    lock_path = store.series_dir("ex", "BTCUSDT", "1m") / LOCK_FILE
    impatient = CandleStore(store.root, lock_timeout=0.05)
    with open(lock_path, "a") as held:   # a second open file description conflicts even within one process
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout, match=str(lock_path)) as caught:
            impatient.write("ex", "BTCUSDT", "1m", candles(FEB + M, 1), now_ms=FAR)
        assert time.monotonic() - started < 2
        assert isinstance(caught.value, CandleError)
        assert store.read("ex", "BTCUSDT", "1m", FEB, FAR)["timestamp"].size == 1  # readers take no lock
    assert impatient.write("ex", "BTCUSDT", "1m", candles(FEB + M, 1), now_ms=FAR) == 1


# --- two processes --------------------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from backtest_kit._store import CandleStore

    root, proc, iterations, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    M = 60_000
    store = CandleStore(root, lock_timeout=30)
    Path(root, f"ready{proc}").touch()
    while not Path(root, "go").exists():
        time.sleep(0.005)

    def rows(minutes):
        ts = base + np.asarray(minutes, dtype=np.int64) * M
        price = np.full(ts.size, 1.0 + proc)
        return np.column_stack([ts, price, price, price, price, np.full(ts.size, float(proc))])

    for i in range(iterations):
        shared = np.arange(i * 20, i * 20 + 40)          # written by both processes
        mine = [-200 + 2 * i + proc, 1300 + 2 * i + proc]  # written by this process only, once, in both months
        minutes = np.concatenate([shared, mine])[::-1]
        store.write("ex", "BTC/USDT", "1m", rows(minutes), covered=(int(base + shared[0] * M),
                    int(base + (shared[-1] + 1) * M)), now_ms=4_000_000_000_000)
""")


def test_two_processes_writing_the_same_series_concurrently(tmp_path: Path):
    root = tmp_path / "store"
    root.mkdir()
    base = MAR - 600 * M      # shared minutes [0, 1220) cross the February/March boundary at minute 600
    iterations = 60
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(p), str(iterations), str(base)],
                              env=env, stderr=subprocess.PIPE, text=True) for p in (0, 1)]
    deadline = time.monotonic() + 60
    while not all((root / f"ready{p}").exists() for p in (0, 1)):
        assert time.monotonic() < deadline and all(pr.poll() is None for pr in procs), [
            pr.stderr.read() for pr in procs if pr.poll() is not None and pr.stderr]
        time.sleep(0.01)
    (root / "go").touch()
    store = CandleStore(root)
    reads = 0
    while any(pr.poll() is None for pr in procs) and time.monotonic() < deadline + 60:
        # lock-free reads during the writes: always a consistent, sorted snapshot of each partition
        seen = store.read("ex", "BTC/USDT", "1m", 0, FAR)["timestamp"]
        assert (np.diff(seen) > 0).all()
        store.missing("ex", "BTC/USDT", "1m", base, base + 1220 * M)
        reads += 1
    for pr in procs:
        _, err = pr.communicate(timeout=120)
        assert pr.returncode == 0, err
    assert reads > 0

    out = store.read("ex", "BTC/USDT", "1m", 0, FAR)
    minutes = (out["timestamp"] - base) // M
    expected = np.concatenate([np.arange(-200, -200 + 2 * iterations), np.arange(0, iterations * 20 + 20),
                               np.arange(1300, 1300 + 2 * iterations)])
    np.testing.assert_array_equal(minutes, expected)       # the union: no update of either process was lost
    owner = np.asarray(out["volume"], dtype=np.int64)
    assert set(owner.tolist()) == {0, 1}
    # every row is intact (one writer's row, never a mix)
    for c in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(out[c], owner + 1.0)
    unique = minutes[(minutes < 0) | (minutes >= 1300)]
    np.testing.assert_array_equal(owner[(minutes < 0) | (minutes >= 1300)], unique % 2)
    assert store.coverage("ex", "BTC/USDT", "1m") == [
        (base - 200 * M, base - 80 * M), (base, base + 1220 * M), (base + 1300 * M, base + 1420 * M)]
    assert partitions(store, symbol="BTC/USDT") == ["2024-02.parquet", "2024-03.parquet"]
    assert not [p for p in store.series_dir("ex", "BTC/USDT", "1m").iterdir() if p.suffix == ".tmp"]
