"""What the engine's fast paths must keep: light import, and the same results as the slow paths."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_pandas():
    # pandas costs ~0.2 s and ~65 MB; it loads only when a DataFrame or Series is asked for.
    code = ("import sys, backtest_kit, backtest_kit.exchanges, backtest_kit.demo; "
            "print('pandas' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
