"""`python -m tests.bench`: start the servers, load them, print one comparison table."""

from __future__ import annotations

import argparse
import asyncio
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

import httpx

from tests.bench import completion, report, wrk
from tests.bench import ledger as ledger_bench
from tests.bench import verification as verification_bench
from tests.bench.loadgen import RequestSpec
from tests.bench.servers import REPO_ROOT, SERVERS, RunningServer, ServerError, running
from tests.bench.signer import load_credentials, private_key_of, signed_headers
from tests.bench.startup import sandbox_startup_figures
from tests.bench.workloads import (
    COMPLETION_P50_MS_MAX,
    OPASE,
    RECEIVER_PATH,
    TARGETS,
    WORKLOADS,
    Workload,
)
from tests.postgres_server import PostgresUnavailable, throwaway_postgres

DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 2.0
QUICK_DURATION_S = 3.0
QUICK_WARMUP_S = 1.0
DEFAULT_REQUESTS_MAX = 1_000_000
"""Per measured run; far above what 10 s reach on a 2-core machine, a safety bound only."""
LOADGEN_GRACE_S = 30.0
CPU_BUSY_MAX = 0.10
"""Busier than this (all CPUs, sampled for 1 s before the run) means something else runs."""
DATABASES = ("postgresql", "sqlite")
WORKERS_BY_DATABASE = {"postgresql": 2, "sqlite": 1}
"""PostgreSQL: one worker per core of the 2-core reference machine. SQLite: one process (its
replay cache lives in process memory)."""
LEDGER_WORKERS = 2
SETUP_TIMEOUT_S = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="opase against a bare Starlette app and the reference's figures.",
    )
    parser.add_argument("--duration-s", type=float, help="measured seconds per run (10; quick 3)")
    parser.add_argument("--warmup-s", type=float, help="unmeasured seconds first (2; quick 1)")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument(
        "--database",
        action="append",
        choices=DATABASES,
        help="run on this database only (repeatable; default both)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="server processes on PostgreSQL (default 2; SQLite always runs one)",
    )
    parser.add_argument(
        "--requests-max", type=int, default=DEFAULT_REQUESTS_MAX, help="cap per measured run"
    )
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help="run only this workload (and its baseline); repeatable",
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator of unsigned workloads: wrk when on PATH (auto), or ours",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--png", type=Path, metavar="PATH", help="also draw a chart (matplotlib)")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip the ledger, verification and sandbox start-up figures",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target of issue 8 is not met"
    )
    parser.add_argument(
        "--growth",
        action="store_true",
        help="also time list pages and grant-limit checks at growing payment counts "
        "(tests.bench.growth; SQLite and PostgreSQL)",
    )
    parser.add_argument(
        "--growth-sizes",
        type=lambda text: sorted({int(n) for n in text.split(",") if n.strip()}),
        default=[1000, 100000],
        metavar="N,N",
        help="stored payments per growth run (default 1000,100000)",
    )
    args = parser.parse_args(argv)
    if args.duration_s is None:
        args.duration_s = QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S
    if args.warmup_s is None:
        args.warmup_s = QUICK_WARMUP_S if args.quick else DEFAULT_WARMUP_S
    if args.duration_s <= 0 or args.warmup_s < 0:
        parser.error("--duration-s must be positive and --warmup-s not negative")
    if args.requests_max < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--requests-max and --workers must be at least 1")
    if args.tool == "wrk" and not wrk.available():
        parser.error("--tool wrk: wrk is not on PATH")
    args.databases = args.database or list(DATABASES)
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


async def _setup(server: RunningServer) -> dict[str, str]:
    """What the workloads name: an incoming payment of Alice's to read, an open one of Bob's
    to pay, made through the API with the client's signed requests."""
    assert server.credentials_path is not None
    credentials = load_credentials(server.credentials_path)
    private_key = private_key_of(credentials)
    alice = credentials["wallet_address"]
    bob = server.base_url + RECEIVER_PATH

    async with httpx.AsyncClient(timeout=SETUP_TIMEOUT_S, trust_env=False) as client:

        async def create_incoming_payment(wallet_address: str) -> str:
            url = f"{server.base_url}/op/incoming-payments"
            body = json.dumps({"walletAddress": wallet_address}).encode()
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            headers = signed_headers(credentials, private_key, "POST", url, headers, body)
            response = await client.post(url, content=body, headers=headers)
            if response.status_code != 201:
                raise ServerError(f"setup: {response.status_code} {response.text[:500]}")
            payment_url: str = response.json()["id"]
            return payment_url

        read = await create_incoming_payment(alice)
        receiver = await create_incoming_payment(bob)
    return {
        "alice": alice,
        "bob": bob,
        "incoming_payment_id": read.rsplit("/", 1)[1],
        "receiver": receiver,
    }


def request_spec(workload: Workload, server: RunningServer, names: dict[str, str]) -> RequestSpec:
    path, body = workload.render(names)
    return RequestSpec(
        workload.method, server.host, server.port, path, tuple(workload.headers.items()), body
    )


def run_python_loadgen(
    spec: RequestSpec,
    workload: Workload,
    server: RunningServer,
    connections: int,
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tests.bench.loadgen",
        "--url", f"{server.base_url}{spec.path}",
        "--method", workload.method,
        "--connections", str(connections),
        "--warmup-s", str(args.warmup_s),
        "--duration-s", str(args.duration_s),
        "--requests-max", str(args.requests_max),
    ]  # fmt: skip
    for name, value in spec.headers:
        command += ["--header", f"{name}: {value}"]
    if spec.body:
        body_file = work_dir / "body.bin"
        body_file.write_bytes(spec.body)
        command += ["--body-file", str(body_file)]
    if workload.signer:
        assert server.credentials_path is not None
        command += ["--signer", workload.signer, "--credentials", str(server.credentials_path)]
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
    workload: Workload,
    server: RunningServer,
    names: dict[str, str],
    connections: int,
    tool: str,
    args: argparse.Namespace,
    work_dir: Path,
) -> dict[str, Any]:
    spec = request_spec(workload, server, names)
    if tool == "wrk" and workload.signer is None and connections in workload.connections:
        result = wrk.generate(
            spec,
            connections=connections,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            requests_max=args.requests_max,
        )
    else:
        result = run_python_loadgen(spec, workload, server, connections, args, work_dir)
    return {
        "workload": workload.name,
        "server": workload.server,
        "method": workload.method,
        "path": spec.path,
        "connections": connections,
        "baseline": workload.baseline,
        "is_baseline": workload.baseline is None,
        "rafiki_rps": workload.rafiki_rps.get(connections),
        **result,
    }


def add_ratios(results: list[dict[str, Any]]) -> None:
    """`ratio`: over the bare baseline of the same database section and concurrency;
    `vs_rafiki`: over the reference's figure; `target`: issue 8's, where it sets one."""
    by_key = {(r["database"], r["workload"], r["connections"]): r for r in results}
    for result in results:
        result["ratio"] = 1.0 if result["is_baseline"] else None
        base = by_key.get((result["database"], result["baseline"], result["connections"]))
        if base is not None and base["rps"]:
            result["ratio"] = round(result["rps"] / base["rps"], 3)
        rafiki = result.get("rafiki_rps")
        result["vs_rafiki"] = round(result["rps"] / rafiki, 2) if rafiki else None
        result["target"] = TARGETS.get((result["workload"], result["connections"]))


def verdicts(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 8's targets, each with the best database's figure."""
    found = []
    for (name, connections), target in TARGETS.items():
        rows = [r for r in results if r["workload"] == name and r["connections"] == connections]
        if not rows:
            continue
        best = max(rows, key=lambda r: r["vs_rafiki"] or 0)
        met = (best["vs_rafiki"] or 0) >= target and best["errors"] == 0
        found.append(
            {
                "what": f"{name} at {connections} connections",
                "database": best["database"],
                "rps": best["rps"],
                "vs_rafiki": best["vs_rafiki"],
                "target": target,
                "met": met,
            }
        )
    for result in results:
        figures = result.get("completion")
        # The latency of one payment, as the reference's was measured: no queue behind it.
        if figures is None or result["connections"] != 1 or figures["p50_ms"] is None:
            continue
        found.append(
            {
                "what": "outgoing payment created -> completed, one client, p50",
                "database": result["database"],
                "p50_ms": figures["p50_ms"],
                "target": COMPLETION_P50_MS_MAX,
                "met": figures["p50_ms"] <= COMPLETION_P50_MS_MAX and not figures["stuck"],
            }
        )
    return found


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the `finally`s that stop the servers.
    raise SystemExit(128 + signum)


def run_database(
    database: str,
    workers: int,
    workloads: list[Workload],
    tool: str,
    args: argparse.Namespace,
    work_dir: Path,
) -> list[dict[str, Any]]:
    """Every workload on one database: the bare baseline and opase, both with `workers`."""
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        database_url = None
        if database == "postgresql":
            # Durable, as a deployment runs it: commits wait for the disk.
            database_url = stack.enter_context(throwaway_postgres(durable=True))
        section_dir = work_dir / database
        section_dir.mkdir()
        servers = {
            name: stack.enter_context(running(SERVERS[name], workers, section_dir, database_url))
            for name in dict.fromkeys(w.server for w in workloads)
        }
        names = asyncio.run(_setup(servers[OPASE])) if OPASE in servers else {}
        for workload in workloads:
            server = servers[workload.server]
            for connections in workload.connections:
                print(
                    f"# {database} x{workers}: {workload.name}, {connections} connection(s)",
                    file=sys.stderr,
                )
                started_at = datetime.now(UTC)
                result = run_workload(workload, server, names, connections, tool, args, section_dir)
                if workload.completes_outgoing_payments:
                    result["completion"] = asyncio.run(
                        completion.figures(servers[OPASE].env, started_at)
                    )
                results.append({"database": database, "workers": workers, **result})
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workloads = select_workloads(args.workload)
    tool = "wrk" if args.tool == "wrk" or (args.tool == "auto" and wrk.available()) else "python"
    started = datetime.now(UTC)
    machine = report.machine_info()
    runs = sum(len(w.connections) for w in workloads) * len(args.databases)
    seconds = runs * (math.ceil(args.warmup_s) + math.ceil(args.duration_s))
    print(
        f"# {runs} runs x ({args.warmup_s:g} s warm-up + {args.duration_s:g} s) on "
        f"{', '.join(args.databases)}; unsigned load: {tool}, signed: tests.bench.loadgen; "
        f"about {seconds + 20 * len(args.databases)} s",
        file=sys.stderr,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opase-bench-") as tmp:
        for database in args.databases:
            workers = WORKERS_BY_DATABASE[database]
            if database == "postgresql" and args.workers is not None:
                workers = args.workers
            try:
                results += run_database(database, workers, workloads, tool, args, Path(tmp))
            except (ServerError, PostgresUnavailable) as exc:
                print(f"error: {database}: {exc}", file=sys.stderr)
                return 2
    add_ratios(results)
    verdict = verdicts(results)

    print(report.render_table(results))
    notes = [
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, uvicorn {machine['versions']['uvicorn']}; servers, "
        "PostgreSQL and load generators all on these CPUs, over 127.0.0.1; "
        f"{args.warmup_s:g} s warm-up + {args.duration_s:g} s per run",
        "x bare: over the bare Starlette app on the same database section, workers, "
        "concurrency and load generator; x Rafiki: over the reference's figure (issue 8)",
    ]
    for result in results:
        if "completion" in result:
            label = f"{result['database']}, {result['connections']} connection(s)"
            notes.append(completion.render(label, result["completion"]))
    if any(r["errors"] for r in results):
        notes.append("! errors: non-2xx responses or socket errors/timeouts: figures suspect")
    busy = machine["cpu_busy_before_run"]
    if busy is not None and busy > CPU_BUSY_MAX:
        notes.append(
            f"note: the CPUs were {busy:.0%} busy just before the run: other processes compete"
        )
    for item in verdict:
        figure = (
            f"{item['vs_rafiki']:.2f}x Rafiki ({item['rps']:,.0f} req/s)"
            if "vs_rafiki" in item
            else f"{item['p50_ms']:.1f} ms"
        )
        bound = f">= {item['target']:g}x" if "vs_rafiki" in item else f"<= {item['target']:g} ms"
        notes.append(
            f"target: {item['what']} on {item['database']}: {figure}, {bound}: "
            f"{'met' if item['met'] else 'NOT met'}"
        )

    extras: dict[str, Any] = {}
    if not args.no_extras:
        print("# ledger: local transfers from worker processes", file=sys.stderr)
        extras["ledger"] = ledger_bench.run(workers=LEDGER_WORKERS, duration_s=args.duration_s)
        print("# verification: a signed request's check", file=sys.stderr)
        extras["verification"] = verification_bench.run(quick=args.quick)
        extras["sandbox_startup"] = sandbox_startup_figures()
        print()
        print(ledger_bench.render(extras["ledger"]))
        print()
        print(verification_bench.render(extras["verification"]))
        notes.append(verification_bench.summary(extras["verification"]))
        startup = extras["sandbox_startup"]
        notes.append(
            f"opase sandbox, launch to both ASEs answering: median {startup['median_s']:.2f} s, "
            f"max {startup['max_s']:.2f} s over 3 launches (target < 2 s)"
        )
    if args.growth:
        from tests.bench import growth as growth_bench  # only this flag pays its imports

        print("# growth: list pages and limit checks as stored payments grow", file=sys.stderr)
        extras["growth"] = growth_bench.run(sizes=args.growth_sizes)
        print()
        print(growth_bench.render(extras["growth"]))
    print("\n".join(notes))

    if args.json:
        given = argv if argv is not None else sys.argv[1:]
        report.write_json(
            args.json,
            {
                "started": started.isoformat(),
                "command": shlex.join([sys.executable, "-m", "tests.bench", *given]),
                "machine": machine,
                "settings": {
                    "duration_s": args.duration_s,
                    "warmup_s": args.warmup_s,
                    "databases": args.databases,
                    "requests_max": args.requests_max,
                    "unsigned_load": tool,
                },
                "targets": verdict,
                "results": [{k: v for k, v in r.items() if k != "raw"} for r in results],
                **extras,
            },
        )
        print(f"wrote {args.json}", file=sys.stderr)
    if args.png:
        title = (
            f"opase ({machine['nproc']} CPUs, load generator on the same CPUs), "
            f"{time.strftime('%Y-%m-%d')}"
        )
        skipped = report.write_png(args.png, results, title)
        print(skipped or f"wrote {args.png}", file=sys.stderr)

    if any(r["errors"] for r in results):
        return 1
    if args.check and not all(item["met"] for item in verdict):
        return 1
    return 0
