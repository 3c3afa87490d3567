"""Figures and the tables the benchmarks print; the machine and tree they ran on."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import FACES, REPO


# -- figures and tables -------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; nan for an empty one."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(np.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    """A compact fixed-width table; floats get 2 decimals unless already formatted as strings."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.2f}"  # nan -> "-"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append(
            "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        )
    return "\n".join(lines)


def note(message: str) -> None:
    """Progress to stderr (figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def add_service_options(parser: argparse.ArgumentParser, timeout: float, drained: str) -> None:
    """The options of a benchmark that starts the webserver and daemon: Dagster's storage, extra
    environment, the photo folder, how long to wait for the runs to drain, where to keep the logs."""
    parser.add_argument("--dagster-postgres", action="store_true", help="Dagster storage on the local Postgres")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra pipeline environment")
    parser.add_argument("--shared", type=Path, default=FACES, help="the shared photos (MANIFEST.csv)")
    parser.add_argument("--timeout", type=float, default=timeout, help=f"seconds to wait for {drained} to drain")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the webserver/daemon logs here")


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """--env KEY=VALUE options (e.g. a switch that turns near-duplicate detection off)."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


def git_state() -> str:
    """Commit and dirty state of the tree being measured, for the record."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return commit + (" + uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} at start"


def keep_dir(path: Path, keep: Path | None, with_databases: bool = False) -> None:
    """Copy the work directory's logs (and, if asked, its SQLite databases) somewhere that survives
    the temporary directory; never the bucket's images."""
    if keep is not None:
        skipped = ("bucket",) if with_databases else ("bucket", "*.db*")
        shutil.copytree(path, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*skipped))
