"""The README's shell blocks run.

Every ```bash block of README.md either starts with the line "# needs the network" or runs
offline on the bundled data:

- Offline blocks run in README order, each as `bash -e`, all in one temporary directory, so a
  block may use what an earlier one wrote (the demo CSV, my_strategy.py), as a reader following
  the README would. `backtest-kit` and `python` on PATH are this interpreter (`python -m
  backtest_kit.cli` for the console script) with this checkout's package. Lines starting with
  `pip install` or `git clone` (the install lines at the top) are not executed. Each block must
  exit 0, every report path it prints must exist, and the files named below must be written.
- Network blocks are only parsed: each command line must be `backtest-kit ...` with a
  subcommand and options that the typer app has (the same check `--help` of that subcommand
  would show).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import backtest_kit as bk
from backtest_kit.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
NETWORK = "# needs the network"
NOT_RUN = ("pip install", "git clone")


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def runnable(block: str) -> str:
    """The block without its `pip install` / `git clone` lines (and their continuation lines)."""
    kept: list[str] = []
    continued = False
    for line in block.splitlines():
        skip = continued or line.lstrip().startswith(NOT_RUN)
        continued = skip and line.rstrip().endswith("\\")
        if not skip:
            kept.append(line)
    return "\n".join(kept) + "\n"


def command_lines(block: str) -> list[list[str]]:
    """The commands of a block as words: here-document bodies left out, continuation lines joined,
    comments and blank lines dropped."""
    lines: list[str] = []
    end: str | None = None  # the word that ends the here-document being skipped
    for line in block.splitlines():
        if end is not None:
            end = None if line.strip() == end else end
            continue
        lines.append(line)
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)", line)
        end = heredoc.group(1) if heredoc else None
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def check_command(words: list[str]) -> None:
    """`backtest-kit SUBCOMMAND... [args]` whose subcommands and options exist in the typer app."""
    assert words[0] == "backtest-kit", f"not a backtest-kit command: {shlex.join(words)}"
    command = typer.main.get_command(app)  # typer's own (vendored) click objects
    rest = words[1:]
    path = ["backtest-kit"]
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        assert rest and rest[0] in command.commands, f"{shlex.join(words)}: no subcommand {rest[:1]} of {path}"
        command, rest = command.commands[rest[0]], rest[1:]
        path.append(command.name or "")
    options = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    positional, i = 0, 0
    while i < len(rest):
        word = rest[i]
        if not word.startswith("-"):
            positional += 1
        else:
            name, eq, _ = word.partition("=")
            assert name in options, f"{shlex.join(words)}: {' '.join(path)} has no option {name}"
            option = options[name]
            if not option.is_flag and not option.count and not eq:  # the value is the next word
                assert i + 1 < len(rest) and not rest[i + 1].startswith("-"), f"{shlex.join(words)}: {name} needs a value"
                i += 1
        i += 1
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if not any(p.nargs == -1 for p in arguments):
        assert positional <= sum(p.nargs for p in arguments), f"{shlex.join(words)}: too many arguments"


def _shims(bin_dir: Path) -> dict[str, str]:
    """PATH and PYTHONPATH for the blocks: `backtest-kit` and `python` run this interpreter on the
    package this test imported."""
    bin_dir.mkdir()
    for name, line in (("backtest-kit", f'exec "{sys.executable}" -m backtest_kit.cli "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / name).chmod(0o755)
    package_root = str(Path(bk.__file__).resolve().parents[1])
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="200",
               PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    return env


def test_the_readme_marks_or_runs_every_shell_block():
    blocks = bash_blocks()
    offline = [b for b in blocks if not b.startswith(NETWORK)]
    assert len(blocks) >= 6 and len(offline) >= 4
    commands = [w for b in offline for w in command_lines(runnable(b)) if w[0] == "backtest-kit"]
    used = {" ".join(w[1:3]) if w[1] == "data" else w[1] for w in commands}
    # Every command of the CLI is shown running offline (data download needs the network).
    assert used >= {"demo", "backtest", "walker", "live", "data check", "data list"}, used
    python = [w for b in offline for w in command_lines(runnable(b)) if w[0] != "backtest-kit"]
    assert python == [["cat", ">", "my_strategy.py", "<<EOF"], ["python", "-", "<<EOF"]]  # here-documents only


NETWORK_BLOCKS = [b for b in bash_blocks() if b.startswith(NETWORK)]


@pytest.mark.parametrize("block", NETWORK_BLOCKS, ids=[f"network-block-{i + 1}" for i in range(len(NETWORK_BLOCKS))])
def test_network_blocks_parse_against_the_cli(block):
    commands = command_lines(block)
    assert commands
    for words in commands:
        check_command(words)


def test_offline_shell_blocks_run_in_order(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = _shims(tmp_path / "bin")
    reports: list[Path] = []
    for i, block in enumerate(b for b in bash_blocks() if not b.startswith(NETWORK)):
        script = tmp_path / f"block{i + 1}.sh"
        script.write_text(runnable(block))
        done = subprocess.run(["bash", "-e", str(script)], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"README shell block {i + 1} failed:\n{block}\n{done.stdout}\n{done.stderr}"
        for line in re.findall(r"^Report: (.+)$", done.stdout, re.M):
            reports.append(Path(line.strip()))
    assert len(reports) >= 10
    missing = [p for p in reports if not p.exists()]
    assert not missing, missing
    dump = work / "dump"
    for written in [work / "candles.csv", work / "my_strategy.py", dump / "backtest" / "ma-crossover.html",
                    dump / "eth" / "ma-crossover.html", dump / "walker" / "walker.html", dump / "walker" / "mine.html",
                    dump / "backtest" / "my_strategy%3Aget_signal.html", dump / "backtest" / "every-12.md",
                    dump / "live" / "my_strategy%3Aget_signal.md", dump / "live" / "ma-crossover.md",
                    dump / "store-walk" / "walker.html", work / "my-candles" / "mine"]:
        assert written.exists(), written
