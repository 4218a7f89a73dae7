"""What the benchmark scripts share: paths, the machine description, docs sections."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / ".." / "shared" / "datasets"
DOC = REPO / "docs" / "benchmarks.md"


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine(*libraries: str) -> str:
    """Cores, CPU model, RAM, Python and the given libraries' versions, and the date."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown RAM"
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        if match:
            ram = f"{int(match.group(1)) / 1024**2:.1f} GiB RAM"
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {importlib.import_module(name).__version__}" for name in libraries
    )
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return (
        f"{cores()} cores ({cpu}), {ram}; Python {platform.python_version()}"
        f"{', ' + versions if versions else ''}; {date}"
    )


def write_section(start: str, end: str, text: str) -> None:
    """Replace one script's section of docs/benchmarks.md (append it if missing)."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in current and end in current:
        updated = current.split(start, 1)[0] + text + current.split(end, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated)


def require_active(description: dict, log: str = "") -> None:
    if description.get("status") != "ACTIVE":
        raise SystemExit(f"not ACTIVE: {description}\n{log}")
