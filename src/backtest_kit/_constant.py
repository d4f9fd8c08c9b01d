"""Take-profit / stop-loss progress levels (percent of the way to TP or SL) worth acting on."""

from __future__ import annotations

from types import SimpleNamespace

Constant = SimpleNamespace(TP_LEVEL1=30, TP_LEVEL2=60, TP_LEVEL3=90, SL_LEVEL1=40, SL_LEVEL2=80)
