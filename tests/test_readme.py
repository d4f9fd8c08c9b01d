"""The README's Python blocks run, in order, in one namespace, on the bundled data, offline.

A block that needs a real exchange or a cluster says so on its first line ("# needs the network",
"# needs a Ray cluster") and is compiled but not run. Blocks with a top-level `await` run in an event loop of their own.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path

import backtest_kit as bk

README = Path(__file__).resolve().parents[1] / "README.md"
NEEDS = ("# needs the network", "# needs a Ray cluster")


def test_every_python_block_of_the_readme_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks dump reports under ./dump
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 8
    namespace: dict = {"__name__": "__readme__"}
    skipped = 0
    for i, block in enumerate(blocks):
        code = compile(block, f"README python block {i + 1}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if block.startswith(NEEDS):
            skipped += 1
            continue
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, namespace))  # noqa: S307 - the README's own code
        else:
            exec(code, namespace)  # noqa: S102
    assert skipped <= 4
    assert (tmp_path / "dump" / "backtest" / "momentum.md").exists()
    assert (tmp_path / "dump" / "walker" / "pick.md").exists()
    assert (tmp_path / "dump" / "portfolio" / "jan.md").exists()
    assert (tmp_path / "dump" / "sweep" / "momentum-grid.html").exists()
    bk.reset()
