"""The machine a benchmark ran on, for its results files. Imports nothing of MPI: the
launching processes (run.py, npb/run.py, bench_oversubscribe.py) use it."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """Local. The CPU's model name from /proc/cpuinfo (else platform's guess)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> str:
    """Local. ``"<cpu model>, <n> cores"``."""
    return f"{cpu_model()}, {os.cpu_count()} cores"
