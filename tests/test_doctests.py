"""The docstring examples of the package run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import backtest_kit

MODULES = sorted(m.name for m in pkgutil.walk_packages(backtest_kit.__path__, "backtest_kit."))


@pytest.mark.parametrize("name", ["backtest_kit", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
