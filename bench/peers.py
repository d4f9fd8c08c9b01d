"""The same strategy on the same candles in ours and in its peers: one table of seconds, peak memory and trades.

The moving-average rule of bench/year.py (bench/peers/rule.py) on the synthetic year of 1m candles, in ours
(event and vectorised mode), backtesting.py, vectorbt (cold and warm), backtrader and the TypeScript
backtest-kit from npm (run with node). Each row runs in its own process, so its seconds and peak memory are
its own; an engine that is not installed says so in its row. bench/README.md tells how to install the peers.

Usage: python bench/peers.py [--minutes N] [--markdown] [--only ENGINE ...] [--repeat N] [--python PATH]
                             [--ts-cache off|json] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent / "peers"
sys.path.insert(0, str(HERE))

from rule import (  # noqa: E402  (bench/peers is not a package: its scripts run as files)
    FAST,
    INTERVAL_MIN,
    LIFETIME_MIN,
    MINUTE,
    SL_PCT,
    SLOW,
    START,
    TAIL_MIN,
    TP_PCT,
    WARMUP_MIN,
    write_candles,
)

YEAR = 525_600
NODE_DIR = HERE / "node"


@dataclass(frozen=True)
class Row:
    engine: str
    mode: str
    kind: str       # "python" (bench/peers/worker.py) or "node" (bench/peers/node/run.mjs)
    worker: str = ""  # the worker's engine key
    worker_mode: str = ""


def all_rows(ts_cache: str) -> list[Row]:
    ts_mode = "event (getSignal), candle cache " + ("off" if ts_cache == "off" else "on (JSON files)")
    return [
        Row("ours", "event (get_signal)", "python", "ours", "event"),
        Row("ours", "vectorised (get_signals)", "python", "ours", "vectorised"),
        Row("backtesting.py", "event (Strategy.next)", "python", "backtesting.py", "event"),
        Row("vectorbt", "cold (first call: JIT)", "python", "vectorbt", "cold"),
        Row("vectorbt", "warm (second call)", "python", "vectorbt", "warm"),
        Row("backtrader", "event (Strategy.next)", "python", "backtrader", "event"),
        Row("backtest-kit (TypeScript)", ts_mode, "node", worker_mode=ts_cache),
    ]

FOOTNOTE = f"""\
The rule of bench/year.py on its candles (synthetic, seed 7: one day of warm-up, then the frame; then
{TAIL_MIN} minutes from seed 8 so that a trade opened at the frame's end can run out). Every engine opens only
inside the frame: when flat, at most once per {INTERVAL_MIN}-minute bucket (its first minute, or the minute after
a close), a cross of the {FAST}- and {SLOW}-candle means of 1m closes at the last closed candle opens a long (up)
or a short (down); take-profit {TP_PCT:g} % and stop-loss {SL_PCT:g} % from the entry price; closed after
{LIFETIME_MIN} minutes at the latest; fee 0.1 % and slippage 0.1 % a side (backtesting.py: commission 0.2 %).
- seconds: the engine's run alone (candles already in its input format; interpreter start, imports and
  reading the candle file not counted), the fastest of --repeat runs. peak MB: that run's process maximum
  resident set (ru_maxrss). trades: closed trades (a position still open at the data's end counts).
- Entry: ours (both modes) and the TypeScript backtest-kit open at the current price, the VWAP of the last 5
  closed 1m candles, at the open of the candle after the signal; backtesting.py, vectorbt and backtrader at
  the next bar's open (the signal bar's close in this data). TP and SL are set from that entry price.
- Exits: ours, from the entry candle on, when a candle's high/low reaches TP or SL, TP first when one candle
  reaches both (CC_INTRABAR_POLICY="take_profit"); an expiry closes at the VWAP. The TypeScript backtest-kit
  (19.5.0): SL when the candle's low/high touches it, TP only when the VWAP reaches it, SL first; an expiry
  at the VWAP; positions still open at the frame's end are closed there. backtesting.py and backtrader (from
  the entry bar) and vectorbt (from the bar after the entry): high/low, SL first when one bar reaches both;
  an expiry closes at the next bar's open.
- Means: ours and the TypeScript script sum each window left to right; backtesting.py (pandas rolling),
  vectorbt (MA) and backtrader (SMA) use their own rolling means, which can differ in the last bit at a tie.
- vectorbt cold: the first call in a fresh process with an empty numba cache (JIT compilation included);
  warm: the same call again in that process, timed alone.
- The TypeScript backtest-kit runs with its candle cache off (PersistCandleAdapter.useDummy()), the candles
  coming from memory as in the other engines; its default (--ts-cache json) writes one JSON file per candle.
"""


def make_candles(minutes: int) -> np.ndarray:
    """bench/year.py's candles (the warm-up day and the frame), then TAIL_MIN more from another seed that go on
    from the last close, so the frame's candles are year.py's and a trade opened at its end can run out."""
    from backtest_kit.demo import synthetic_candles

    body = synthetic_candles(WARMUP_MIN + minutes, start_ms=START - WARMUP_MIN * MINUTE)
    tail = synthetic_candles(TAIL_MIN, start_ms=int(body[-1, 0]) + MINUTE, seed=8, price=float(body[-1, 4]))
    return np.vstack([body, tail])


def _status(msg: str) -> dict[str, Any]:
    return {"status": msg}


def run_child(cmd: list[str], *, env: dict[str, str], cwd: str, timeout: float) -> tuple[dict[str, Any], float]:
    """Run `cmd` to its end; its last JSON line and its own peak memory in MB (wait4's ru_maxrss)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        except OSError as e:  # e.g. --python names no interpreter
            return _status(f"cannot start {cmd[0]}: {e.strerror}"), 0.0
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            # wait4 (not proc.wait) so the rusage is this child's alone.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_mb = usage.ru_maxrss / 1024
        if timed_out.is_set():
            return _status(f"timed out after {timeout:.0f} s"), peak_mb
        out.seek(0)
        err.seek(0)
        lines = [ln for ln in out.read().decode(errors="replace").splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return _status(f"failed (exit {proc.returncode}): {_reason(err.read().decode(errors='replace'))}"), peak_mb
        return json.loads(lines[-1]), peak_mb


def _reason(stderr: str) -> str:
    """The line of a child's stderr that says why it failed: the last one naming an error (a traceback's
    last line; node's error line comes before its stack and its version), else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    named = [ln for ln in lines if "Error" in ln and not ln.startswith("at ")]
    return (named or lines or ["no output"])[-1][:200]


def _node_command(row: Row, data: Path, minutes: int) -> list[str] | str:
    node = shutil.which("node")
    if node is None:
        return "not installed (node not found; then cd bench/peers/node && npm install)"
    if not (NODE_DIR / "node_modules" / "backtest-kit").is_dir():
        return "not installed (cd bench/peers/node && npm install)"
    return [node, str(NODE_DIR / "run.mjs"), str(data), str(minutes), str(START), str(INTERVAL_MIN),
            str(FAST), str(SLOW), str(TP_PCT), str(SL_PCT), str(LIFETIME_MIN), row.worker_mode]


def measure(row: Row, data: Path, minutes: int, python: str, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="peers-") as cwd:  # whatever an engine writes (dumps, caches) goes here
        if row.kind == "node":
            cmd = _node_command(row, data, minutes)
            if isinstance(cmd, str):
                return _status(cmd)
        else:
            cmd = [python, str(HERE / "worker.py"), row.worker, row.worker_mode, str(data), str(minutes)]
            # Cold means cold: numba finds no cache of an earlier run.
            env["NUMBA_CACHE_DIR"] = str(Path(cwd) / "numba-cache")
        result, peak_mb = run_child(cmd, env=env, cwd=cwd, timeout=timeout)
    if "status" not in result:
        result["peak_mb"] = peak_mb
    return result


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs (the one least disturbed by the rest of the machine), or the status."""
    done = [r for r in runs if "status" not in r]
    return min(done, key=lambda r: float(r["seconds"])) if done else runs[-1]


def _cells(row: Row, result: dict[str, Any]) -> list[str]:
    engine = f"{row.engine} {result['version']}" if "version" in result else row.engine
    if "status" in result:
        return [engine, row.mode, result["status"], "", ""]
    trades = str(result["trades"]) + (f" ({result['note']})" if "note" in result else "")
    return [engine, row.mode, f"{result['seconds']:.2f}", f"{result['peak_mb']:.0f}", trades]


HEADERS = ["engine", "mode", "seconds", "peak MB", "trades"]


def markdown(table: list[list[str]], minutes: int, command: str) -> str:
    lines = [f"{minutes:,} one-minute candles ({minutes / YEAR:.2f} years), `{command}`:", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 3) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table]
    return "\n".join(lines + ["", FOOTNOTE])


def show(table: list[list[str]], minutes: int) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{minutes:,} one-minute candles, one strategy, every engine")
    for i, h in enumerate(HEADERS):
        t.add_column(h, justify="right" if i >= 2 else "left")
    for cells in table:
        t.add_row(*cells)
    console = Console(width=None if sys.stdout.isatty() else 150)  # a pipe or file gets the whole rows
    console.print(t)
    console.print(FOOTNOTE, highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=YEAR, help="1m candles in the frame (default one year)")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown (for bench/README.md)")
    ap.add_argument("--only", nargs="+", metavar="ENGINE", help="run only these engines (e.g. ours vectorbt)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the Python engines")
    ap.add_argument("--ts-cache", choices=["off", "json"], default="off",
                    help="the TypeScript backtest-kit's candle cache: off (from memory, as the others) or its "
                         "default JSON files (slow: one file per candle)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each row; the fastest is shown")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a row is given up")
    args = ap.parse_args()
    if args.minutes < SLOW + 2:
        ap.error(f"--minutes must be at least {SLOW + 2}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    only = [o.lower() for o in args.only or []]
    rows = [r for r in all_rows(args.ts_cache) if not only or any(r.engine.lower().startswith(o) for o in only)]
    table = []
    with tempfile.TemporaryDirectory(prefix="peers-data-") as tmp:
        data = Path(tmp) / "candles.f8"
        write_candles(make_candles(args.minutes), data)
        for row in rows:
            runs = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                runs.append(measure(row, data, args.minutes, args.python, args.timeout))
                print(f"{row.engine} / {row.mode}: {runs[-1]} ({time.perf_counter() - t0:.1f} s with start-up)",
                      file=sys.stderr, flush=True)
                if "status" in runs[-1]:
                    break
            table.append(_cells(row, best(runs)))
    if args.markdown:
        flags = (f" --minutes {args.minutes}" + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
                 + (f" --ts-cache {args.ts_cache}" if args.ts_cache != "off" else ""))
        print(markdown(table, args.minutes, f"python bench/peers.py{flags} --markdown"))
    else:
        show(table, args.minutes)


if __name__ == "__main__":
    main()
