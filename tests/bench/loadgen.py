"""Our own HTTP/1.1 keep-alive load generator, for machines without wrk.

    python -m tests.bench.loadgen --url http://127.0.0.1:8000/alice -H 'Accept: application/json' \
        --connections 32 --warmup-s 2 --duration-s 10 --requests-max 1000000

prints one JSON object (requests/s, p50/p99 ms, status counts, errors) on stdout.

N connections, each a loop of write-request / read-response over raw asyncio streams (uvloop
when installed). Requests started during the warm-up are not measured. The run is bounded in
time (warm-up + duration, plus a grace period after which whatever is still in flight is
cancelled and counted as a timeout) and in count (`--requests-max` measured requests). Only
loopback targets are accepted.

Each connection asks a *request builder* for the bytes of its next request: the same bytes
every time, or, with `--signer gnap --credentials FILE`, a request signed anew each time
(fresh HTTP message signature, `tests.bench.signer`).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.bench.signer import RequestBuilder, gnap_builder, load_credentials

GRACE_S = 5.0
"""After warm-up + duration, requests still in flight this long are cancelled (timeouts)."""
HEAD_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class RequestSpec:
    method: str
    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


SIGNERS: dict[str, Callable[[RequestSpec, dict[str, str]], RequestBuilder]] = {"gnap": gnap_builder}
"""Signer name -> factory of a builder that makes each request anew from the credentials."""


def render(spec: RequestSpec) -> bytes:
    """The bytes of an HTTP/1.1 request (keep-alive is HTTP/1.1's default)."""
    names = {name.lower() for name, _ in spec.headers}
    lines = [f"{spec.method} {spec.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {spec.host}:{spec.port}")
    if "user-agent" not in names:
        lines.append("User-Agent: opase-bench")
    lines += [f"{name}: {value}" for name, value in spec.headers]
    if (spec.body or spec.method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(spec.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body


def builder_for(
    spec: RequestSpec, signer: str | None, credentials: dict[str, str] | None = None
) -> RequestBuilder:
    if signer is not None:
        assert credentials is not None, "a signer needs the client's credentials"
        return SIGNERS[signer](spec, credentials)
    raw = render(spec)
    return lambda: raw


class ProtocolError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, bool]:
    """Reads one response; returns its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ProtocolError(f"not an HTTP/1.x response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower and head.startswith(b"HTTP/1.1")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, keep_alive
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 17)
        length = int(head[at + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)  # data and its CRLF
            if size == 0:
                break
    else:
        await reader.read()  # delimited by the end of the connection
        keep_alive = False
    return status, keep_alive


class Run:
    """Shared state of one run; connections are tasks on one event loop, so no locks."""

    def __init__(self, warmup_s: float, duration_s: float, requests_max: int) -> None:
        now_ns = time.perf_counter_ns()
        self.measure_start_ns = now_ns + int(warmup_s * 1e9)
        self.end_ns = self.measure_start_ns + int(duration_s * 1e9)
        self.requests_max = requests_max
        self.started_count = 0
        """Measured requests started (bounded by requests_max)."""
        self.warmup_count = 0
        self.latencies_ns: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.socket_error_count = 0
        self.timeout_count = 0
        self.last_end_ns = self.measure_start_ns
        self.first_error: str | None = None

    def error(self, measuring: bool, exc: BaseException) -> None:
        if measuring:
            self.socket_error_count += 1
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}"


async def _connection(run: Run, spec: RequestSpec, build: RequestBuilder) -> None:
    perf_ns = time.perf_counter_ns
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    latencies = run.latencies_ns
    statuses = run.statuses
    try:
        while True:
            start_ns = perf_ns()
            if start_ns >= run.end_ns:
                return
            measuring = start_ns >= run.measure_start_ns
            if measuring:
                if run.started_count >= run.requests_max:
                    return
                run.started_count += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(
                        spec.host, spec.port, limit=HEAD_BYTES_MAX
                    )
                assert reader is not None
                writer.write(build())
                status, keep_alive = await read_response(reader, spec.method)
            except (
                OSError,
                EOFError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ProtocolError,
                ValueError,
            ) as exc:
                run.error(measuring, exc)
                if writer is not None:
                    writer.close()
                    writer = None
                await asyncio.sleep(0.01)  # a refused connection must not spin the loop
                continue
            end_ns = perf_ns()
            if measuring:
                latencies.append(end_ns - start_ns)
                statuses[status] += 1
                if end_ns > run.last_end_ns:
                    run.last_end_ns = end_ns
            else:
                run.warmup_count += 1
            if not keep_alive:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


def _percentile_ms(sorted_ns: list[int], fraction: float) -> float | None:
    if not sorted_ns:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_ns)))  # nearest-rank
    return sorted_ns[rank - 1] / 1e6


def summarize(run: Run) -> dict[str, Any]:
    latencies = sorted(run.latencies_ns)
    count = len(latencies)
    elapsed_s = max(run.last_end_ns - run.measure_start_ns, 1) / 1e9
    non_2xx = sum(n for status, n in run.statuses.items() if not 200 <= status < 300)
    errors = non_2xx + run.socket_error_count + run.timeout_count
    return {
        "requests": count,
        "duration_s": round(elapsed_s, 3),
        "rps": round(count / elapsed_s, 1) if count else 0.0,
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "mean_ms": (sum(latencies) / count / 1e6) if count else None,
        "max_ms": latencies[-1] / 1e6 if latencies else None,
        "statuses": {str(status): n for status, n in sorted(run.statuses.items())},
        "non_2xx": non_2xx,
        "socket_errors": run.socket_error_count,
        "timeouts": run.timeout_count,
        "errors": errors,
        "first_error": run.first_error,
        "warmup_requests": run.warmup_count,
        "capped": run.started_count >= run.requests_max,
    }


async def generate(
    spec: RequestSpec,
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    requests_max: int,
    signer: str | None = None,
    credentials: dict[str, str] | None = None,
) -> dict[str, Any]:
    build = builder_for(spec, signer, credentials)
    run = Run(warmup_s, duration_s, requests_max)
    tasks = [asyncio.ensure_future(_connection(run, spec, build)) for _ in range(connections)]
    _, pending = await asyncio.wait(tasks, timeout=warmup_s + duration_s + GRACE_S)
    for task in pending:
        task.cancel()
    run.timeout_count += len(pending)
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return summarize(run)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _loopback_target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise SystemExit(f"--url must be http://HOST:PORT/PATH, not {url!r}")
    host = parts.hostname
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        address = socket.gethostbyname(host)  # a name such as localhost
    if not ipaddress.ip_address(address).is_loopback:
        raise SystemExit(f"refusing to load {host}: only loopback targets are allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return address, parts.port, path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/PATH (loopback only)")
    parser.add_argument("--method", "-X", default="GET")
    parser.add_argument("--header", "-H", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body-file", help="file whose bytes are the request body")
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--duration-s", "-d", type=float, default=10.0)
    parser.add_argument(
        "--requests-max", type=int, default=1_000_000, help="stop after this many measured requests"
    )
    parser.add_argument("--signer", choices=sorted(SIGNERS), default=None)
    parser.add_argument("--credentials", help="the client's credentials (tests.bench.seed)")
    args = parser.parse_args(argv)
    if (args.signer is None) != (args.credentials is None):
        parser.error("--signer and --credentials go together")
    if args.connections < 1 or args.duration_s <= 0 or args.warmup_s < 0 or args.requests_max < 1:
        parser.error("connections, duration and requests-max must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host, port, path = _loopback_target(args.url)
    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise SystemExit(f"header {header!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    body = b""
    if args.body_file:
        with open(args.body_file, "rb") as file:
            body = file.read()
    spec = RequestSpec(args.method.upper(), host, port, path, tuple(headers), body)
    result = _run(
        generate(
            spec,
            connections=args.connections,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            requests_max=args.requests_max,
            signer=args.signer,
            credentials=None if args.credentials is None else load_credentials(args.credentials),
        )
    )
    result["tool"] = f"tests.bench.loadgen ({loop_name()})"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
