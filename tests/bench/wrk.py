"""Drives `wrk` (when it is on PATH) and reads its output into the loadgen's result shape.

wrk is bounded by `-d`; a Lua script bounds it in count too (each thread stops after its
share of `requests_max` responses), sets the method, headers and body, and counts non-2xx
responses strictly (wrk's own "Non-2xx or 3xx" line lets 3xx pass). Requests/s, p50 and
p99 are parsed from wrk's `--latency` report.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.loadgen import RequestSpec

TIMEOUT_S = 5
SUBPROCESS_GRACE_S = 30

_LUA = """
wrk.method = {method}
wrk.body = {body}
{headers}
local cap = {cap}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  responses = 0
  non2xx = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if responses >= cap then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_non2xx = 0
  local total_responses = 0
  for _, thread in ipairs(threads) do
    total_non2xx = total_non2xx + thread:get("non2xx")
    total_responses = total_responses + thread:get("responses")
  end
  io.write(string.format(
    "BENCH {{\\"non_2xx\\": %d, \\"responses\\": %d, \\"requests\\": %d, \\"duration_us\\": %d, " ..
    "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, " ..
    "\\"p50_us\\": %d, \\"p99_us\\": %d}}\\n",
    total_non2xx, total_responses, summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    run = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (run.stdout or run.stderr).splitlines()[:1]
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def _lua_string(value: str | bytes) -> str:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    return '"' + "".join(f"\\{byte:03d}" for byte in raw) + '"'


def lua_script(spec: RequestSpec, cap_per_thread: int) -> str:
    headers = "\n".join(
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in spec.headers
    )
    return _LUA.format(
        method=_lua_string(spec.method),
        body="nil" if not spec.body else _lua_string(spec.body),
        headers=headers,
        cap=cap_per_thread,
    )


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not found:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * _UNITS_MS[found.group(2)]


def parse_output(text: str) -> dict[str, Any]:
    """The figures of wrk's `--latency` report, plus our Lua `done()` line."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    total = re.search(r"^\s*([0-9]+) requests in ([0-9.]+\w+)", text, re.M)
    p50 = re.search(r"^\s+50(?:\.000)?%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99(?:\.000)?%\s+(\S+)", text, re.M)
    if not (rps and total and p50 and p99):
        raise ValueError(f"unexpected wrk output:\n{text}")
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = sum(int(n) for n in socket.groups()[:3]) if socket else 0
    timeouts = int(socket.group(4)) if socket else 0
    loose_non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    extra_line = re.search(r"^BENCH (\{.*\})$", text, re.M)
    extra = json.loads(extra_line.group(1)) if extra_line else {}
    non_2xx = extra.get("non_2xx", int(loose_non_2xx.group(1)) if loose_non_2xx else 0)
    requests = int(total.group(1))
    return {
        "requests": requests,
        "duration_s": round(_ms(total.group(2)) / 1e3, 3),
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "timeouts": timeouts,
        "errors": non_2xx + socket_errors + timeouts,
    }


def _url(spec: RequestSpec) -> str:
    return f"http://{spec.host}:{spec.port}{spec.path}"


def wrk_command(
    connections: int, threads: int, duration_s: int, script: Path, url: str, latency: bool
) -> list[str]:
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s"]
    command += ["--timeout", f"{TIMEOUT_S}s", "-s", str(script)]
    return [*command, "--latency", url] if latency else [*command, url]


def _wrk(
    spec: RequestSpec, connections: int, threads: int, duration_s: int, script: Path, latency: bool
) -> str:
    command = wrk_command(connections, threads, duration_s, script, _url(spec), latency)
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + SUBPROCESS_GRACE_S,
    )
    if run.returncode != 0:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stderr or run.stdout}")
    return run.stdout


def generate(
    spec: RequestSpec,
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    requests_max: int,
) -> dict[str, Any]:
    """A warm-up run (discarded), then the measured run; wrk takes whole seconds."""
    threads = max(1, min(connections, (os.cpu_count() or 2) // 2))
    cap_per_thread = max(1, requests_max // threads)
    with tempfile.TemporaryDirectory(prefix="opase-bench-wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script(spec, cap_per_thread))
        if warmup_s > 0:
            _wrk(spec, connections, threads, max(1, math.ceil(warmup_s)), script, latency=False)
        measured_s = max(1, math.ceil(duration_s))
        output = _wrk(spec, connections, threads, measured_s, script, latency=True)
    result = parse_output(output)
    result["capped"] = result["requests"] >= cap_per_thread * threads
    result["tool"] = f"{version()} ({threads} thread{'s' if threads > 1 else ''})"
    result["raw"] = output
    result["command"] = shlex.join(
        wrk_command(connections, threads, measured_s, Path("request.lua"), _url(spec), latency=True)
    )
    return result
