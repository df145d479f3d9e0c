"""`python -m tests.chaos [--duration-s S] [--database sqlite|postgresql|both] [--seed N]
[--json PATH] [--work-dir DIR]`: the reliability suite, standalone (`nox -s chaos`).

Runs the chaos engine once per database, prints each closing report and exits 0 only when
every run is clean (1 otherwise, 2 when a run could not be carried out)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from tests.chaos.run import DATABASES, ChaosConfig, ChaosError, ChaosReport, run_chaos
from tests.postgres_server import PostgresUnavailable

DEFAULT_DURATION_S = 120.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--duration-s", type=float, default=DEFAULT_DURATION_S,
        help=f"seconds of load and faults per database (default {DEFAULT_DURATION_S:.0f})",
    )  # fmt: skip
    parser.add_argument("--database", choices=[*DATABASES, "both"], default="both")
    parser.add_argument("--seed", type=int, help="seed of every random choice (default: new)")
    parser.add_argument("--json", type=Path, help="also write the reports here as JSON")
    parser.add_argument(
        "--work-dir", type=Path,
        help="keep the servers' data and logs here (default: a temporary folder, removed)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.duration_s <= 0:
        parser.error("--duration-s must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    databases = DATABASES if args.database == "both" else (args.database,)
    work_root = args.work_dir or Path(tempfile.mkdtemp(prefix="opase-chaos-"))
    print(f"chaos: seed {seed}, {args.duration_s:.0f} s per database, work dir {work_root}")
    reports: list[ChaosReport] = []
    try:
        for database in databases:
            config = ChaosConfig(database, args.duration_s, seed, work_root / database)
            try:
                report = asyncio.run(run_chaos(config))
            except (ChaosError, PostgresUnavailable) as exc:
                print(f"chaos on {database} could not run: {exc}", file=sys.stderr)
                return 2
            print(report.render(), flush=True)
            reports.append(report)
    finally:
        if args.json is not None:
            runs = [report.as_json() for report in reports]
            args.json.write_text(json.dumps({"seed": seed, "runs": runs}, indent=2) + "\n")
        if args.work_dir is None and all(report.clean for report in reports):
            shutil.rmtree(work_root, ignore_errors=True)
    return 0 if all(report.clean for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
