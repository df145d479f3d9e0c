"""The benchmark's outputs: one plain-text table, optionally JSON and a PNG chart."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

COLUMNS = (
    "workload", "database", "workers", "conn", "req/s", "p50 ms", "p99 ms", "errors",
    "x bare", "x Rafiki",
)  # fmt: skip
TEXT_COLUMNS = {0, 1}


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for result in results:
        errors = str(result["errors"]) + (" !" if result["errors"] else "")
        ratio = _number(result.get("ratio"), 2)
        if result.get("capped"):
            ratio += " (capped)"
        vs_rafiki = _number(result.get("vs_rafiki"), 2)
        if result.get("target") is not None:
            vs_rafiki += f" (>= {result['target']:g})"
        rows.append(
            (
                result["workload"],
                result["database"] if result["server"] != "bare" else "-",
                str(result["workers"]),
                str(result["connections"]),
                _number(result["rps"], 0),
                _number(result["p50_ms"], 2),
                _number(result["p99_ms"], 2),
                errors,
                ratio,
                vs_rafiki,
            )
        )
    return rows


def _aligned(rows: list[tuple[str, ...]], text_columns: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.ljust(w) if i in text_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return " | ".join(cells).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return [line(rows[0]), rule, *(line(row) for row in rows[1:])]


def render_table(results: list[dict[str, Any]]) -> str:
    return "\n".join(_aligned([COLUMNS, *table_rows(results)], TEXT_COLUMNS))


def render_markdown(results: list[dict[str, Any]]) -> str:
    """The same table for the README."""
    rows = [COLUMNS, *table_rows(results)]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                return text_line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> int | None:
    try:
        for text_line in Path("/proc/meminfo").read_text().splitlines():
            if text_line.startswith("MemTotal:"):
                return round(int(text_line.split()[1]) / 1024 / 1024)
    except (OSError, ValueError):
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_fraction(interval_s: float = 1.0) -> float | None:
    """How busy the machine's CPUs are right now (0..1), sampled over `interval_s`."""
    before = _cpu_times()
    time.sleep(interval_s)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def machine_info() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_busy_before_run": cpu_busy_fraction(),
        "versions": {
            name: _version(name)
            for name in ("opase", "starlette", "uvicorn", "uvloop", "httptools", "orjson")
        },
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_png(path: Path, results: list[dict[str, Any]], title: str) -> str | None:
    """Requests/s of each opase row beside the reference's figure where it has one; returns
    why it was skipped, or None when written."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # no display needed
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed: no PNG (pip install matplotlib)"
    rows = [r for r in results if r["server"] != "bare"]
    labels = [
        "\n".join((r["workload"], f"{r['database']} x{r['workers']}, c={r['connections']}"))
        for r in rows
    ]
    positions = list(range(len(rows)))
    width = 0.4
    figure, axes = plt.subplots(figsize=(2 + 0.7 * len(rows), 6.5))
    opase_bars = axes.bar(
        [p - width / 2 for p in positions], [r["rps"] for r in rows], width, label="opase",
        color="#3a7bd5",
    )  # fmt: skip
    rafiki = [(p, r["rafiki_rps"]) for p, r in zip(positions, rows, strict=True) if r["rafiki_rps"]]
    axes.bar(
        [p + width / 2 for p, _ in rafiki], [v for _, v in rafiki], width,
        label="Rafiki (issue 8)", color="#aaaaaa",
    )  # fmt: skip
    for bar, result in zip(opase_bars, rows, strict=True):
        note = f"{result['rps']:,.0f}"
        if result.get("vs_rafiki"):
            note += f"\nx{result['vs_rafiki']:.1f}"
        axes.annotate(
            note,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axes.set_xticks(positions, labels, fontsize=7, rotation=90)
    axes.set_yscale("log")
    axes.set_ylabel("requests/s (log scale)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return None
