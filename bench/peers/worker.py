"""One engine and mode of bench/peers.py in this process: prints one JSON line with seconds and trades, or a
status ("not installed (pip install X)") when the engine cannot run here.

Usage: python bench/peers/worker.py ENGINE MODE CANDLES_FILE MINUTES
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from typing import Any

from rule import read_candles

# engine -> (runner module, the distribution to pip install for it)
ENGINES = {
    "ours": ("run_ours", "backtest-kit"),
    "backtesting.py": ("run_backtesting", "backtesting"),
    "vectorbt": ("run_vectorbt", "vectorbt"),
    "backtrader": ("run_backtrader", "backtrader"),
}
IMPORT_NAMES = {"backtest-kit": "backtest_kit"}


def main(argv: list[str]) -> dict[str, Any]:
    engine, mode, path, minutes = argv[0], argv[1], argv[2], int(argv[3])
    module_name, dist = ENGINES[engine]
    if importlib.util.find_spec(IMPORT_NAMES.get(dist, dist)) is None:
        return {"status": f"not installed (pip install {dist})"}
    try:
        runner = importlib.import_module(module_name)
    except ImportError as e:  # installed but broken (e.g. a numba that does not match numpy)
        return {"status": f"cannot import: {e}"}
    return dict(runner.run(mode, read_candles(path), minutes))


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
