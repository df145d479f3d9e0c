"""`python -m tests.bench`: start each server, load it, print one comparison table."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench import ledger as ledger_bench
from tests.bench import report, wrk
from tests.bench import verification as verification_bench
from tests.bench.loadgen import RequestSpec
from tests.bench.servers import REPO_ROOT, SERVERS, RunningServer, ServerError, running
from tests.bench.startup import sandbox_startup_figures
from tests.bench.workloads import ACCEPTANCE, WORKLOADS, Workload

DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 2.0
QUICK_DURATION_S = 3.0
QUICK_WARMUP_S = 1.0
DEFAULT_CONNECTIONS = 32
DEFAULT_WORKERS = 1
DEFAULT_REQUESTS_MAX = 1_000_000
"""Per measured run; far above what 10 s reach on a 2-core machine, a safety bound only."""
LOADGEN_GRACE_S = 30.0
CPU_BUSY_MAX = 0.10
"""Busier than this (all CPUs, sampled for 1 s before the run) means something else runs."""


LEDGER_WORKERS = 2
"""Processes writing the ledger at once: one per core of the 2-core reference machine."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="opase against a bare Starlette JSON endpoint, on this machine.",
    )
    parser.add_argument(
        "--duration-s",
        type=float,
        help=f"measured seconds per workload (default {DEFAULT_DURATION_S:g}, "
        f"--quick {QUICK_DURATION_S:g})",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        help=f"unmeasured seconds first (default {DEFAULT_WARMUP_S:g}, --quick {QUICK_WARMUP_S:g})",
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="uvicorn workers per server"
    )
    parser.add_argument(
        "--requests-max",
        type=int,
        default=DEFAULT_REQUESTS_MAX,
        help="cap on measured requests per workload",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every workload this many times, interleaved; report the median",
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when on PATH (auto), or tests.bench.loadgen",
    )
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help="run only this workload (and its baseline); repeatable",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--png", type=Path, metavar="PATH", help="also draw a chart (needs matplotlib)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 when {ACCEPTANCE[0]!r} is below {ACCEPTANCE[1]:g}x its baseline",
    )
    args = parser.parse_args(argv)
    if args.duration_s is None:
        args.duration_s = QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S
    if args.warmup_s is None:
        args.warmup_s = QUICK_WARMUP_S if args.quick else DEFAULT_WARMUP_S
    if args.duration_s <= 0 or args.warmup_s < 0:
        parser.error("--duration-s must be positive and --warmup-s not negative")
    if min(args.connections, args.workers, args.requests_max, args.rounds) < 1:
        parser.error("--connections, --workers, --requests-max and --rounds must be at least 1")
    if args.tool == "wrk" and not wrk.available():
        parser.error("--tool wrk: wrk is not on PATH")
    return args


def select_workloads(names: list[str] | None) -> list[Workload]:
    if not names:
        return list(WORKLOADS)
    by_name = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {list(by_name)}")
    wanted = set(names) | {by_name[n].baseline for n in names if by_name[n].baseline}
    return [w for w in WORKLOADS if w.name in wanted]


def request_spec(workload: Workload, server: RunningServer) -> RequestSpec:
    return RequestSpec(
        workload.method,
        server.host,
        server.port,
        workload.path,
        tuple(workload.headers.items()),
        workload.body,
    )


def run_python_loadgen(
    workload: Workload, server: RunningServer, args: argparse.Namespace, work_dir: Path
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tests.bench.loadgen",
        "--url", f"{server.base_url}{workload.path}",
        "--method", workload.method,
        "--connections", str(args.connections),
        "--warmup-s", str(args.warmup_s),
        "--duration-s", str(args.duration_s),
        "--requests-max", str(args.requests_max),
    ]  # fmt: skip
    for name, value in workload.headers.items():
        command += ["--header", f"{name}: {value}"]
    if workload.body:
        body_file = work_dir / "body.bin"
        body_file.write_bytes(workload.body)
        command += ["--body-file", str(body_file)]
    if workload.signer:
        command += ["--signer", workload.signer]
    run = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        timeout=args.warmup_s + args.duration_s + LOADGEN_GRACE_S,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"load generator failed ({run.returncode}): {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    result["command"] = shlex.join(command)
    return result


def run_workload(
    workload: Workload, server: RunningServer, tool: str, args: argparse.Namespace, work_dir: Path
) -> dict[str, Any]:
    if tool == "wrk" and workload.signer is None:
        result = wrk.generate(
            request_spec(workload, server),
            connections=args.connections,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            requests_max=args.requests_max,
        )
    else:
        result = run_python_loadgen(workload, server, args, work_dir)
    return {
        "workload": workload.name,
        "server": workload.server,
        "method": workload.method,
        "path": workload.path,
        "connections": args.connections,
        "workers": args.workers,
        "baseline": workload.baseline,
        "is_baseline": workload.baseline is None,
        **result,
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median requests/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds"] = len(runs)
    chosen["rps_all"] = [run["rps"] for run in runs]
    chosen["errors_in_run"] = chosen["errors"]
    chosen["errors"] = sum(run["errors"] for run in runs)  # any round's errors flag the row
    return chosen


def add_ratios(results: list[dict[str, Any]]) -> None:
    by_name = {r["workload"]: r for r in results}
    for result in results:
        if result["is_baseline"]:
            result["ratio"] = 1.0
            continue
        base = by_name.get(result["baseline"])
        result["ratio"] = round(result["rps"] / base["rps"], 3) if base and base["rps"] else None


def acceptance(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    name, target = ACCEPTANCE
    result = next((r for r in results if r["workload"] == name), None)
    if result is None or result.get("ratio") is None:
        return None
    return {
        "workload": name,
        "baseline": result["baseline"],
        "ratio": result["ratio"],
        "target": target,
        "met": result["ratio"] >= target and result["errors"] == 0,
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the `finally`s that stop the servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workloads = select_workloads(args.workload)
    tool = "wrk" if args.tool == "wrk" or (args.tool == "auto" and wrk.available()) else "python"
    started = datetime.now(UTC)
    machine = report.machine_info()
    seconds = args.rounds * len(workloads) * (math.ceil(args.warmup_s) + math.ceil(args.duration_s))
    print(
        f"# {len(workloads)} workloads x ({args.warmup_s:g} s warm-up + {args.duration_s:g} s), "
        f"{args.connections} connections, {args.workers} uvicorn worker(s), "
        f"load generator: {'wrk' if tool == 'wrk' else 'tests.bench.loadgen'}; "
        f"{args.rounds} round(s); about {seconds + 3 * len({w.server for w in workloads})} s",
        file=sys.stderr,
    )
    runs: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workloads}
    with tempfile.TemporaryDirectory(prefix="opase-bench-") as tmp, ExitStack() as stack:
        work_dir = Path(tmp)
        try:
            # Every server up at once (an idle one costs no CPU), so that with --rounds
            # the workloads interleave and a noisy neighbour hits them alike.
            servers = {
                name: stack.enter_context(running(SERVERS[name], args.workers, work_dir))
                for name in dict.fromkeys(w.server for w in workloads)
            }
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for round_index in range(args.rounds):
            for workload in workloads:
                server = servers[workload.server]
                print(
                    f"# {workload.name} on {workload.server} ({server.base_url}{workload.path})"
                    + (f", round {round_index + 1}/{args.rounds}" if args.rounds > 1 else ""),
                    file=sys.stderr,
                )
                runs[workload.name].append(run_workload(workload, server, tool, args, work_dir))
    results = [median_run(runs[w.name]) for w in workloads]
    add_ratios(results)
    verdict = acceptance(results)
    tool_name = results[0]["tool"] if results else tool

    print(report.render_table(results))
    notes = []
    if any(r["errors"] for r in results):
        notes.append(
            "! errors: non-2xx responses or socket errors/timeouts during the run: "
            "its figures are suspect"
        )
    if any(r.get("capped") for r in results):
        notes.append(
            f"(capped): stopped at --requests-max {args.requests_max}; "
            "with wrk its req/s is then understated"
        )
    notes.append(
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"uvicorn {machine['versions']['uvicorn']} x{args.workers} worker(s), "
        f"{args.warmup_s:g} s warm-up + {args.duration_s:g} s, load: {tool_name}"
    )
    if args.rounds > 1:
        notes.append(f"median of {args.rounds} interleaved rounds; errors counted over all rounds")
    busy = machine["cpu_busy_before_run"]
    if busy is not None and busy > CPU_BUSY_MAX:
        notes.append(
            f"note: the CPUs were {busy:.0%} busy just before the run: other processes compete "
            "with the servers, so the figures are noisy (--rounds 3 helps)"
        )
    if verdict:
        notes.append(
            f"acceptance: {verdict['workload']} / {verdict['baseline']} = {verdict['ratio']:.2f} "
            f"(target >= {verdict['target']:.2f}): {'met' if verdict['met'] else 'NOT met'}"
        )
    print(
        "# ledger: local transfers from worker processes on SQLite and PostgreSQL", file=sys.stderr
    )
    ledger_results = ledger_bench.run(workers=LEDGER_WORKERS, duration_s=args.duration_s)
    print()
    print(ledger_bench.render(ledger_results))
    print("# verification: a signed request's check against a bare Ed25519 verify", file=sys.stderr)
    verification = verification_bench.run(quick=args.quick)
    print()
    print(verification_bench.render(verification))
    notes.append(verification_bench.summary(verification))
    startup = sandbox_startup_figures()
    notes.append(
        f"opase sandbox, launch to both ASEs answering: median {startup['median_s']:.2f} s, "
        f"max {startup['max_s']:.2f} s over 3 launches (target < 2 s)"
    )
    print("\n".join(notes))

    if args.json:
        given = argv if argv is not None else sys.argv[1:]
        report.write_json(
            args.json,
            {
                "started": started.isoformat(),
                "command": shlex.join([sys.executable, "-m", "tests.bench", *given]),
                "machine": machine,
                "tool": tool_name,
                "settings": {
                    "duration_s": args.duration_s,
                    "warmup_s": args.warmup_s,
                    "connections": args.connections,
                    "workers": args.workers,
                    "requests_max": args.requests_max,
                },
                "acceptance": verdict,
                "sandbox_startup": startup,
                "ledger": ledger_results,
                "verification": verification,
                "results": [{k: v for k, v in r.items() if k != "raw"} for r in results],
                "wrk_output": {r["workload"]: r["raw"] for r in results if "raw" in r},
            },
        )
        print(f"wrote {args.json}", file=sys.stderr)
    if args.png:
        title = (
            f"opase vs bare Starlette - {tool_name}, {args.connections} connections, "
            f"{time.strftime('%Y-%m-%d')}"
        )
        skipped = report.write_png(args.png, results, title)
        print(skipped or f"wrote {args.png}", file=sys.stderr)

    if any(r["errors"] for r in results):
        return 1
    if args.check and verdict is not None and not verdict["met"]:
        return 1
    return 0
