"""The benches' memory figure: the process's resident high-water mark, reset before what is measured."""

from __future__ import annotations


def reset_peak() -> None:
    """Start a new resident high-water mark (Linux: VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
