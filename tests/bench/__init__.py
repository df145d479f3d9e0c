"""Throughput and latency of opase against a bare Starlette app on the same machine.

    python -m tests.bench [--quick] [--duration-s N] [--warmup-s N] [--connections N]
                          [--workers N] [--rounds N] [--tool auto|wrk|python]
                          [--workload NAME] [--json PATH] [--png PATH] [--check]

Defaults suit a 2-core machine: 1 uvicorn worker, 32 connections, 2 s warm-up + 10 s per
workload (about 40 s in all); `--quick` makes it 1 s + 3 s. `--rounds 3` interleaves three
runs of every workload and reports the median, for a machine other work runs on.

Each server is started the way a user starts it (`python -m uvicorn --factory ...` as a
subprocess, uvloop + httptools, no access log); a separate load generator process (`wrk`
when it is on PATH, else `python -m tests.bench.loadgen`) drives it over 127.0.0.1 only,
bounded in time and in request count. One table compares every workload with its baseline.

Modules: `workloads` (what is measured), `servers` (start, wait, stop), `seed` (opase's
database), `bare_app` (the baseline), `loadgen` (our own HTTP/1.1 keep-alive generator),
`wrk` (wrk driver and output parser), `report` (table, JSON, PNG), `runner` (the command
line). No file here is named `test_*.py`: pytest never collects the benchmark.
"""
