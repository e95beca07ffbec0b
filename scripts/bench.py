#!/usr/bin/env python3
"""Ingest benchmark: the release server under wrk, on SQLite and PostgreSQL.

For each backend it measures, in the same run and with the same client settings:
  * the baseline, GET /health/;
  * single-sample ingest (the firmware's form) from many simulated devices;
  * batch ingest, 100 samples per request;
  * single-sample ingest with an active Lua transform against the same without, in
    interleaved rounds for two tenants (one with the script, one without) and compared by
    their medians, so a drift of the shared machine hits both sides alike; then the same for
    100-sample batches, reported as what the transform adds per sample (server and worker CPU,
    and wall-clock time at that load).
Committed samples are counted in the database afterwards, not taken from wrk.
Then (`--suite all`, the default, or `--suite stream`) scripts/bench/stream_bench.py, per
backend on a fresh server: commit-to-browser latency of the live stream under the same
single-sample load, ingest with and without a subscriber, and the dashboard overview for a
tenant with 1,000 devices.
Then (`--suite all`, or `--suite export` / `--suite quota`) scripts/bench/export_bench.py: the
whole export of a 1,000,000-sample device as CSV, NDJSON and a tenant Lua format per backend
(rows/s, server RSS growth), and single-sample ingest with tier quotas against a tier whose
policy fails (no limits), two SQLite servers in interleaved rounds.
Then (`--suite all`, or `--suite storage`) scripts/bench/storage_bench.py per backend: the
retention and downsampling jobs' rows/s over a 1,000,000-sample device against the ingest rate.
Prints Markdown tables; BENCHMARKS.md keeps the figures and this exact command.
"""
import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    """Nearest-rank percentile (p from 0 to 100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def call(base, path, body=None, headers=None):
    request = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), json.loads(response.read() or b"{}")


BENCH_FREE_TIER = {"max_devices": 1_000_000, "max_samples": 1_000_000_000_000, "retention_days": 3650,
                   "ingest_per_minute": 10_000_000}


def bench_policies(directory):
    """A copy of Policies/ whose free tier (every new tenant's) has limits far above the load:
    the real one allows 3 devices, 100,000 samples and 60 samples per device and minute. The
    checks still run on every request; only the numbers differ."""
    source = os.path.join(HERE, "..", "Policies")
    for name in os.listdir(source):
        if not name.endswith(".lua"):
            continue
        with open(os.path.join(source, name)) as policy:
            text = policy.read()
        if name == "free.lua":
            for field, value in BENCH_FREE_TIER.items():
                text, count = re.subn(rf"\b{field}\s*=\s*[0-9_]+", f"{field} = {value}", text)
                if count != 1:
                    raise SystemExit(f"Policies/free.lua: no single `{field} = N` to raise for the benchmark")
        with open(os.path.join(directory, name), "w") as policy:
            policy.write(text)


class Server:
    def __init__(self, binary, database, log, extra_env=None, policies=None):
        """`policies` writes the policy files into a folder (default: bench_policies)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.policies = tempfile.mkdtemp(prefix="thermostat-bench-policies-")
        (policies or bench_policies)(self.policies)
        env = dict(os.environ, THERMOSTAT_TELEMETRY_RATE_PER_MINUTE="10000000", THERMOSTAT_BCRYPT_COST="4",
                   THERMOSTAT_LOG_LEVEL="warning", THERMOSTAT_POLICIES_DIR=self.policies, **(extra_env or {}))
        self.process = subprocess.Popen([binary, "serve", "--port", str(self.port), "--database", database],
                                        env=env, stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if call(self.base, "/health/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        shutil.rmtree(self.policies, ignore_errors=True)


def wrk(base, script, seconds, connections, threads, env, path=None, headers=(), timeout=None):
    """Runs wrk with one of the scripts/bench/*.lua scripts and parses its BENCH summary line.
    `path` defaults to /health/ for health.lua and to the ingest endpoint otherwise."""
    if path is None:
        path = "/health/" if script.endswith("health.lua") else "/api/telemetry/ingest/"
    extra = [arg for header in headers for arg in ("-H", header)]
    if timeout is not None:
        extra += ["--timeout", f"{timeout}s"]
    output = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", *extra, "-s", script,
         base + path],
        env=dict(os.environ, **env), capture_output=True, text=True, check=True).stdout
    match = re.search(r"BENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+) errors=(\d+)", output)
    if not match:
        raise SystemExit("wrk printed no summary:\n" + output)
    requests, duration, p50, p99, non2xx, errors = map(int, match.groups())
    return {"requests": requests, "seconds": duration / 1e6, "rps": requests / (duration / 1e6),
            "p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "non2xx": non2xx, "errors": errors}


def process_cpu_seconds(pid):
    """User and system CPU of a process and of its live children (the Lua workers), in seconds."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def count_samples(database):
    if database.startswith("sqlite:"):
        out = subprocess.run(["sqlite3", database[len("sqlite:"):], "SELECT count(*) FROM telemetry"],
                             capture_output=True, text=True, check=True).stdout
    else:
        out = subprocess.run(["psql", database.split("?")[0], "-At", "-c", "SELECT count(*) FROM telemetry"],
                             capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def register_tenant(base, email, tenant_name, devices, devices_file, prefix):
    """Registers a user with a new tenant and `devices` devices; returns the session cookie."""
    _, headers, _ = call(base, "/api/auth/register/",
                         {"email": email, "password": "Bench-Passw0rd!", "tenant_name": tenant_name})
    cookie = headers["Set-Cookie"].split(";")[0]
    with open(devices_file, "w") as out:
        for index in range(devices):
            _, _, body = call(base, "/api/devices/register/", {"serial": f"{prefix}-{index:04d}"}, {"Cookie": cookie})
            out.write(f"{prefix}-{index:04d} {body['api_key']}\n")
    return cookie


def run_backend(name, database, args, work):
    log = open(os.path.join(work, f"{name}-server.log"), "w")
    server = Server(args.binary, database, log)
    try:
        devices_file = os.path.join(work, f"{name}-devices.txt")
        register_tenant(server.base, "load-test@example.com", "Bench", args.devices, devices_file, "BENCH")
        scripted_file = os.path.join(work, f"{name}-scripted-devices.txt")
        scripted_cookie = register_tenant(server.base, "load-test-lua@example.com", "Bench Lua", args.devices,
                                          scripted_file, "LUA")
        _, _, uploaded = call(server.base, "/api/scripts/", {
            "name": "bench-transform", "hook": "ingest",
            "source": "return { transform = function(s, ctx) s.temp_inside_c = s.temp_inside_c + 0.5 return s end }"},
            {"Cookie": scripted_cookie})
        call(server.base, f"/api/scripts/{uploaded['script']['id']}/activate/", {}, {"Cookie": scripted_cookie})

        results = {}
        common = {"BENCH_DEVICES": devices_file}
        health = os.path.join(HERE, "bench", "health.lua")
        ingest = os.path.join(HERE, "bench", "ingest.lua")
        wrk(server.base, health, 2, args.connections, args.threads, common)  # warm-up
        results["health"] = wrk(server.base, health, args.seconds, args.connections, args.threads, common)
        epoch = int(time.time()) - 86400

        def ingest_run(devices, batch, day):
            before = count_samples(database)
            cpu_before = process_cpu_seconds(server.process.pid)
            result = wrk(server.base, ingest, args.seconds, args.connections, args.threads,
                         dict(common, BENCH_DEVICES=devices, BENCH_BATCH=str(batch),
                              BENCH_BASE_EPOCH=str(epoch - day * 86400)))
            result["cpu_us"] = (process_cpu_seconds(server.process.pid) - cpu_before) / result["requests"] * 1e6
            result["committed"] = count_samples(database) - before
            return result

        results["single"] = ingest_run(devices_file, 1, 0)
        results["batch"] = ingest_run(devices_file, 100, 1)
        plain, scripted = [], []
        for round_index in range(args.script_rounds):
            plain.append(ingest_run(devices_file, 1, 2 + round_index))
            scripted.append(ingest_run(scripted_file, 1, 2 + round_index))
        results["plain"] = sorted(plain, key=lambda r: r["rps"])[args.script_rounds // 2]
        results["scripted"] = sorted(scripted, key=lambda r: r["rps"])[args.script_rounds // 2]
        results["ratios"] = [with_script["rps"] / without["rps"] for without, with_script in zip(plain, scripted)]
        results["plain_cpu_us"] = statistics.median(r["cpu_us"] for r in plain)
        results["scripted_cpu_us"] = statistics.median(r["cpu_us"] for r in scripted)
        # The same comparison for 100-sample batches, where the transform's round trip is shared
        # by the batch: what the transform adds per sample, in CPU and in wall-clock time.
        batch_plain, batch_scripted = [], []
        for round_index in range(args.script_rounds):
            batch_plain.append(ingest_run(devices_file, 100, 2 + args.script_rounds + round_index))
            batch_scripted.append(ingest_run(scripted_file, 100, 2 + args.script_rounds + round_index))
        results["batch_plain"] = sorted(batch_plain, key=lambda r: r["rps"])[args.script_rounds // 2]
        results["batch_scripted"] = sorted(batch_scripted, key=lambda r: r["rps"])[args.script_rounds // 2]
        results["batch_cpu_us"] = [(with_script["cpu_us"] - without["cpu_us"]) / 100
                                   for without, with_script in zip(batch_plain, batch_scripted)]
        results["batch_wall_us"] = [(1 / with_script["rps"] - 1 / without["rps"]) / 100 * 1e6
                                    for without, with_script in zip(batch_plain, batch_scripted)]
        return results
    finally:
        server.stop()
        log.close()
        with open(os.path.join(work, f"{name}-server.log")) as server_log:
            problems = [line.rstrip() for line in server_log if "error" in line or "warning" in line]
        for line in problems[:5]:
            print(f"server log ({name}): {line}", file=sys.stderr)


def load_suite(name):
    """scripts/bench/<name>.py, loaded by path (the folder scripts/bench/ shadows a package name)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def suite_databases(backends, work, suite):
    """The backends for one suite: SQLite on a file of the suite's own, PostgreSQL shared."""
    for name, database in backends:
        yield name, (f"sqlite:{work}/{suite}.sqlite" if database.startswith("sqlite:") else database)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--suite", choices=["ingest", "stream", "export", "quota", "alerts", "storage", "all"],
                        default="all",
                        help="ingest: the wrk runs of this file; stream: scripts/bench/stream_bench.py; "
                             "export, quota: scripts/bench/export_bench.py; alerts: scripts/bench/alert_bench.py; "
                             "storage: scripts/bench/storage_bench.py")
    parser.add_argument("--script-rounds", type=int, default=3,
                        help="interleaved rounds of single-sample ingest without and with a Lua transform")
    parser.add_argument("--stream-rounds", type=int, default=3)
    parser.add_argument("--quota-rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="thermostat-bench-")
    backends = []
    if args.backend in ("sqlite", "both"):
        backends.append(("sqlite", f"sqlite:{work}/bench.sqlite"))
    if args.backend in ("postgres", "both"):
        url = os.environ.get("BENCH_DATABASE_URL")
        if not url:
            raise SystemExit("BENCH_DATABASE_URL is not set (make bench starts a cluster)")
        backends.append(("postgres", url))
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {args.devices} devices, "
          f"{os.cpu_count()} cores shared by server, database and load generator\n")
    if args.suite in ("ingest", "all"):
        run_ingest(backends, args, work)
    this = sys.modules[__name__]
    if args.suite in ("stream", "all"):
        stream_bench = load_suite("stream_bench")
        for name, database in suite_databases(backends, work, "stream"):
            stream_bench.run_backend(this, name, database, args, work)
    if args.suite in ("export", "quota", "all"):
        export_bench = load_suite("export_bench")
        if args.suite in ("export", "all"):
            for name, database in suite_databases(backends, work, "export"):
                export_bench.run_export(this, name, database, args, work)
        if args.suite in ("quota", "all"):
            export_bench.run_quota(this, args, work)
    if args.suite in ("alerts", "all"):
        alert_bench = load_suite("alert_bench")
        print()
        alert_bench.print_header()
        for name, database in suite_databases(backends, work, "alerts"):
            alert_bench.run(this, name, database, args, work)
    if args.suite in ("storage", "all"):
        storage_bench = load_suite("storage_bench")
        print()
        storage_bench.print_header()
        for name, database in suite_databases(backends, work, "storage"):
            storage_bench.run(this, name, database, args, work)
    shutil.rmtree(work, ignore_errors=True)


def run_ingest(backends, args, work):
    print("| backend | workload | requests/s | samples/s committed | p50 ms | p99 ms | vs /health/ | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, database in backends:
        results = run_backend(name, database, args, work)
        baseline = results["health"]["rps"]
        for workload, label in (("health", "GET /health/ (baseline)"), ("single", "ingest, 1 sample/request"),
                                ("batch", "ingest, 100 samples/request"),
                                ("plain", f"ingest, 1 sample/request, no script (median of {args.script_rounds})"),
                                ("scripted", f"ingest, 1 sample/request, Lua transform (median of {args.script_rounds})"),
                                ("batch_plain", f"ingest, 100 samples/request, no script (median of {args.script_rounds})"),
                                ("batch_scripted",
                                 f"ingest, 100 samples/request, Lua transform (median of {args.script_rounds})")):
            r = results[workload]
            committed = r.get("committed")
            samples = f"{committed / r['seconds']:,.0f}" if committed is not None else "–"
            print(f"| {name} | {label} | {r['rps']:,.0f} | {samples} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['rps'] / baseline:.0%} | {r['non2xx'] + r['errors']} |")
        print(f"| {name} | requests/s with the Lua transform vs without | "
              f"{results['scripted']['rps'] / results['plain']['rps']:.0%} (per round: "
              f"{', '.join(f'{ratio:.0%}' for ratio in results['ratios'])}) | | | | | |")
        print(f"| {name} | server and worker CPU per request, no script / Lua transform (medians) | "
              f"{results['plain_cpu_us']:.0f} / {results['scripted_cpu_us']:.0f} µs | | | | | |")
        print(f"| {name} | 100-sample batches: the transform's server and worker CPU per sample (median) | "
              f"{statistics.median(results['batch_cpu_us']):.2f} µs (per round: "
              f"{', '.join(f'{cost:.2f}' for cost in results['batch_cpu_us'])}) | | | | | |")
        print(f"| {name} | 100-sample batches: the transform's wall-clock time per sample (median) | "
              f"{statistics.median(results['batch_wall_us']):.2f} µs (per round: "
              f"{', '.join(f'{cost:.2f}' for cost in results['batch_wall_us'])}) | | | | | |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
