"""The shape of the package: public surface, module state, imports and private attributes."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import subprocess
import sys
import types

import pytest

import backtest_kit as bk
from backtest_kit import _state
from backtest_kit.demo import ArrayExchange
from helpers.market import T0, M, flat_market

PKG = pathlib.Path(bk.__file__).parent
MODULES = sorted(p for p in PKG.rglob("*.py"))


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (annotation-only imports, never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(path: pathlib.Path, runtime_only: bool = False) -> set[str]:
    """Every backtest_kit module `path` imports, at any depth (function-local imports too);
    `runtime_only` leaves out the annotation-only ones."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree) if runtime_only else set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("backtest_kit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("backtest_kit"):
                continue
            for a in node.names:  # `from . import _x` imports a module
                sub = f"{mod}.{a.name}"
                out.add(sub if (PKG.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                        or (PKG.parent / sub.replace(".", "/")).is_dir() else mod)
    out.discard(name)
    return out


def test_all_lists_api_names_only():
    assert len(bk.__all__) == len(set(bk.__all__))
    for name in bk.__all__:
        obj = getattr(bk, name)
        assert not isinstance(obj, types.ModuleType), name
        assert not name.startswith("_"), name
    for required in ("Backtest", "Live", "Walker", "add_strategy", "listen_signal", "CandleError", "PersistError",
                     "Signal", "ClosedResult", "BacktestStatistics", "reset", "Heat", "Risk", "Partial"):
        assert required in bk.__all__


def test_star_import_does_not_shadow_stdlib_modules():
    namespace: dict = {}
    exec("import signal\nfrom backtest_kit import *", namespace)  # noqa: S102 - the point of the test
    assert isinstance(namespace["signal"], types.ModuleType)
    assert not any(isinstance(v, types.ModuleType) for k, v in namespace.items() if k != "signal" and k in bk.__all__)


def test_public_classes_present_as_backtest_kit_names():
    assert repr(bk.Signal) == "<class 'backtest_kit.Signal'>"
    assert bk.ClosedResult.__module__ == "backtest_kit"
    assert bk.add_strategy.__module__ == "backtest_kit"
    assert repr(bk.Backtest) == "<backtest_kit.Backtest>"
    assert repr(bk.Risk) == "<backtest_kit.Risk>"
    assert (PKG / "py.typed").exists()


def test_internal_modules_are_private():
    public = {"backtest_kit", "backtest_kit.errors", "backtest_kit.events", "backtest_kit.demo", "backtest_kit.cli",
              "backtest_kit.exchanges"}
    for path in MODULES:
        name = _module_name(path)
        if name in public:
            continue
        assert any(part.startswith("_") for part in name.split(".")[1:]), f"{name} should be private"


def test_no_import_cycles_and_reports_import_no_execution_module():
    for mod, deps in ((_module_name(p), _imports(p)) for p in MODULES):
        if mod.startswith("backtest_kit._report"):
            assert not any(d.startswith("backtest_kit._execution") for d in deps), (mod, deps)
    # Depth-first search for a cycle through package-internal imports (the package __init__
    # re-exports everything and is imported by nothing inside, so it is left out).
    graph = {_module_name(p): _imports(p, runtime_only=True) for p in MODULES}
    inner = {m: {d for d in deps if d in graph and d != "backtest_kit"} for m, deps in graph.items()
             if m != "backtest_kit"}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in inner.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in inner:
        if m not in state:
            visit(m, [m])


NAMEDTUPLE_API = {"_fields", "_asdict", "_replace", "_make", "_repr_html_"}  # public protocols despite the underscore


def test_no_module_reads_another_objects_private_attributes():
    offenders = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or node.attr in NAMEDTUPLE_API:
                continue
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if node.attr.startswith("_") and not node.attr.startswith("__") and not own:
                offenders.append(f"{path.relative_to(PKG)}:{node.lineno} .{node.attr}")
    assert offenders == []


LONG = {"position": "long", "price_take_profit": 102.0, "price_stop_loss": 98.0, "minute_estimated_time": 30}


def _register(name: str, risk_name: str | None = None, callbacks: object = None) -> None:
    """A long at minutes 10, 60, 110, ... of a market that rises to 101 (partial levels) then falls."""
    if "ex" not in [e.exchange_name for e in bk.list_exchanges()]:
        source = ArrayExchange(flat_market(400, {m: 101.0 for m in range(15, 25)}))
        bk.add_exchange(exchange_name="ex", get_candles=source.get_candles)
        bk.add_frame(frame_name="fr", interval="1m", start_date=T0 + 10 * M, end_date=T0 + 300 * M)

    def get_signal(symbol: str, when: object) -> dict | None:
        minute = (int(when.timestamp() * 1000) - T0) // M  # type: ignore[attr-defined]
        return dict(LONG) if minute % 50 == 10 else None

    bk.add_strategy(strategy_name=name, interval="1m", get_signal=get_signal, risk_name=risk_name,
                    callbacks=callbacks)


def _consume(gen: object) -> list:
    async def go() -> list:
        return [x async for x in gen]  # type: ignore[attr-defined]
    return asyncio.run(go())


def test_walker_runs_reach_risk_and_partial_reports_as_backtests_do():
    def refuse(args: object) -> None:
        raise ValueError("nothing passes")

    bk.add_risk(risk_name="never", validations=[{"validate": refuse, "note": "refuses all"}])
    _register("refused", risk_name="never")
    _register("partial", callbacks={"on_partial_profit": lambda *a: None})
    bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr", strategies=["refused", "partial"])
    _consume(bk.Walker.run("BTCUSDT", walker_name="w"))
    walked_risk = asyncio.run(bk.Risk.get_data("BTCUSDT", "refused"))
    walked_partial = asyncio.run(bk.Partial.get_data("BTCUSDT", "partial"))
    walked_trades = asyncio.run(bk.Backtest.get_data("BTCUSDT", "partial")).total_signals

    bk.reset()
    bk.add_risk(risk_name="never", validations=[{"validate": refuse, "note": "refuses all"}])
    _register("refused", risk_name="never")
    _register("partial", callbacks={"on_partial_profit": lambda *a: None})
    _consume(bk.Backtest.run("BTCUSDT", strategy_name="refused", exchange_name="ex", frame_name="fr"))
    _consume(bk.Backtest.run("BTCUSDT", strategy_name="partial", exchange_name="ex", frame_name="fr"))
    direct_risk = asyncio.run(bk.Risk.get_data("BTCUSDT", "refused"))
    direct_partial = asyncio.run(bk.Partial.get_data("BTCUSDT", "partial"))

    assert direct_risk.total_rejections == 6  # minutes 10, 60, ..., 260
    assert walked_risk.total_rejections == direct_risk.total_rejections
    assert [e.comment for e in walked_risk.event_list] == ["refuses all"] * 6
    assert direct_partial.total_profit == 5  # the first long reaches 10..50 % of the way to TP
    assert walked_partial.total_events == direct_partial.total_events
    assert [e.level for e in walked_partial.event_list] == [e.level for e in direct_partial.event_list]
    assert walked_trades == 6


def test_reset_clears_every_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bk.add_risk(risk_name="cap", validations=[lambda args: None])
    bk.add_sizing(sizing_name="z", method="kelly-criterion")
    _register("s", risk_name="cap")
    bk.add_walker(walker_name="w", exchange_name="ex", frame_name="fr", strategies=["s"])
    bk.listen_signal(lambda e: None)
    bk.listen_error(lambda e: None)
    bk.set_config(CC_PERCENT_FEE=0.2)
    bk.set_logger(types.SimpleNamespace(debug=print, info=print, warning=print, error=print))
    bk.use_persist_adapter(bk.FileBackend(tmp_path / "state"))
    _consume(bk.Backtest.run("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="fr"))
    _consume(bk.Walker.run("BTCUSDT", walker_name="w"))
    asyncio.run(bk.Live.get_data("BTCUSDT", "s"))
    bk.Backtest.background("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="fr").wait(30)
    sizes = _state.sizes()
    for name in ("exchanges", "frames", "strategies", "risks", "sizings", "walkers", "listeners",
                 "config_overrides", "logger", "persist_backends", "runs", "backtest_instances",
                 "walker_instances", "live_instances", "risk_books", "background_runs"):
        assert sizes[name] > 0, name
    bk.reset()
    assert _state.sizes() == {name: 0 for name in sizes}
    assert bk.get_config() == bk.get_default_config()


def test_package_imports_cleanly_in_a_fresh_interpreter():
    code = "import backtest_kit, backtest_kit.exchanges, backtest_kit.cli, backtest_kit.demo; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["backtest_kit._engine.machine", "backtest_kit._engine.rules"])
def test_the_state_machine_holds_no_effect_branches(module):
    text = (PKG.parent / module.replace(".", "/")).with_suffix(".py").read_text()
    for needle in ("store is not None", "record is not None", "hub.", "call_reporting", "_journal"):
        assert needle not in text, needle
