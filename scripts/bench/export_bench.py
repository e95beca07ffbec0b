#!/usr/bin/env python3
"""Export and tier-quota benchmarks: the release server, one backend at a time.

Part of `make bench` (scripts/bench.py, `--suite export` / `--suite quota`, both in `all`); alone:
    python3 scripts/bench/export_bench.py --binary .build/release/thermostat --backend sqlite

1. Export: one device with 1,000,000 samples (ingested in 1,000-sample batches from a few
   client threads), then the whole export `GET /api/telemetry/export/?device=…` for `csv`
   (rendered by the server), `ndjson` (built-in Lua plugin) and a tenant's Lua export script
   (`md`: one `timestamp temp` line per row), each read with http.client in 1 MiB chunks as
   fast as the client can. Rows/s over the whole download (request to last byte) and the
   server's peak VmRSS during it (polled every 20 ms) minus its VmRSS just before. On
   PostgreSQL the table is vacuumed after the load, as autovacuum would soon do, so the
   downloads read settled rows rather than set each fresh row's hint bits on first read.
2. Quotas on the ingest path: two servers side by side, the same single-sample wrk load
   (ingest.lua) as the ingest benchmark, in interleaved rounds. "quotas": the benchmark's free
   tier (BENCH_FREE_TIER: device, sample and per-device rate limits set, far above the load, so
   every check runs and none trips). "no quotas": a free.lua whose `limits` raises an error;
   `ScriptEngine.tierLimits` then yields nil (cached like a good answer) and the ingest path
   skips the sample quota and tier rate, using the server's default per-device rate
   (THERMOSTAT_TELEMETRY_RATE_PER_MINUTE, 10,000,000 here). Both still look the tenant and its
   cached limits up on every request.
"""
import argparse
import http.client
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT_SAMPLES = 1_000_000
EXPORT_BATCH = 1000
EXPORT_FORMATS = ("csv", "ndjson", "md")
MD_SCRIPT = ('return { content_type = "text/plain", extension = "txt", '
             'row = function(s) return s.timestamp .. " " .. s.temp_inside_c .. "\\n" end }')
QUOTA_ROUNDS = 3
AIMS = {"csv": 300_000, "lua": 150_000, "rss_mib": 64}


def load_helpers():
    """scripts/bench.py, loaded by path (the folder scripts/bench/ shadows the name)."""
    spec = importlib.util.spec_from_file_location("bench_helpers", os.path.join(HERE, "..", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_seconds(pid):
    """User plus system CPU time of one process (not its children, not the database)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssPeak(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, rss_kib(pid), threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, rss_kib(self.pid))
        return self.peak


def ingest_batches(port, serial, key, base_epoch):
    """EXPORT_SAMPLES samples, one second apart, EXPORT_BATCH per request, from 4 threads."""
    def send(batches):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for index in batches:
            samples = []
            for n in range(index * EXPORT_BATCH, (index + 1) * EXPORT_BATCH):
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base_epoch + n))
                samples.append(f'{{"device_id":"{serial}","mode":"HEAT","temp_inside_c":{18 + (n % 400) / 100:.2f},"temp_outside_c":4.5,'
                               f'"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"{stamp}"}}')
            body = ('{"samples":[' + ",".join(samples) + "]}").encode()
            connection.request("POST", "/api/telemetry/ingest/", body,
                               {"Content-Type": "application/json", "Authorization": f"Device {serial}:{key}"})
            response = connection.getresponse()
            answer = response.read()
            if response.status // 100 != 2:
                raise SystemExit(f"ingest batch {index}: {response.status} {answer[:300]!r}")
        connection.close()

    batches = EXPORT_SAMPLES // EXPORT_BATCH
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [range(t, batches, 4) for t in range(4)]))


def download(port, cookie, serial, fmt):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", f"/api/telemetry/export/?device={serial}&format={fmt}", headers={"Cookie": cookie})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"export {fmt}: {response.status} {response.read()[:300]!r}")
    first = None
    size = lines = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter() - started
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    connection.close()
    return {"seconds": elapsed, "first_s": first or elapsed, "bytes": size, "lines": lines}


def run_export(helpers, name, database, args, work):
    log_path = os.path.join(work, f"{name}-export-server.log")
    log = open(log_path, "w")
    server = helpers.Server(args.binary, database, log, extra_env={"THERMOSTAT_REGISTER_RATE_PER_HOUR": "1000"})
    try:
        devices_file = os.path.join(work, f"{name}-export-devices.txt")
        cookie = helpers.register_tenant(server.base, "export@example.com", "Bench Export", 1, devices_file, "EXP")
        with open(devices_file) as devices:
            serial, key = devices.readline().split()
        _, _, uploaded = helpers.call(server.base, "/api/scripts/", {"name": "md", "hook": "export", "source": MD_SCRIPT},
                                      {"Cookie": cookie})
        helpers.call(server.base, f"/api/scripts/{uploaded['script']['id']}/activate/", {}, {"Cookie": cookie})
        already = helpers.count_samples(database)  # make bench reuses the PostgreSQL database
        started = time.perf_counter()
        ingest_batches(server.port, serial, key, int(time.time()) - EXPORT_SAMPLES - 86400)
        ingest_seconds = time.perf_counter() - started
        stored = helpers.count_samples(database) - already
        print(f"\n{name}: {stored:,} samples stored for {serial} in {ingest_seconds:.1f} s "
              f"({stored / ingest_seconds:,.0f} samples/s, 1,000 per request, 4 client threads)")
        if not database.startswith("sqlite:"):
            # What autovacuum would do soon after a bulk load: otherwise the first read of each
            # fresh row also sets its hint bits (a write), and the export measures that instead.
            started = time.perf_counter()
            subprocess.run(["psql", database.split("?")[0], "-q", "-c", "VACUUM (ANALYZE) telemetry"], check=True)
            print(f"{name}: VACUUM (ANALYZE) telemetry after the load: {time.perf_counter() - started:.1f} s")
        print()
        print("| backend | format | rows | MB | seconds | rows/s | first byte ms | RSS before MiB | peak RSS growth MiB | aim met |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        pid = server.process.pid
        for fmt in EXPORT_FORMATS:
            time.sleep(1)
            before = rss_kib(pid)
            poller = RssPeak(pid)
            poller.start()
            result = download(server.port, cookie, serial, fmt)
            peak = poller.stop()
            rows = stored  # the device's samples: every one is exported (lines are the check)
            rate = rows / result["seconds"]
            growth = (peak - before) / 1024
            aim = AIMS["csv"] if fmt == "csv" else AIMS["lua"]
            met = "yes" if rate >= aim and growth <= AIMS["rss_mib"] else "no"
            print(f"| {name} | {fmt} | {rows:,} ({result['lines']:,} lines) | {result['bytes'] / 1e6:,.1f} | "
                  f"{result['seconds']:.2f} | {rate:,.0f} | {result['first_s'] * 1000:.0f} | {before / 1024:.0f} | "
                  f"{growth:.1f} | {met} (≥ {aim // 1000} k rows/s, ≤ {AIMS['rss_mib']} MiB) |")
            sys.stdout.flush()
    finally:
        server.stop()
        log.close()
        report_log(log_path, f"{name}, export")


def report_log(path, label):
    with open(path) as server_log:
        problems = [line.rstrip() for line in server_log if "error" in line or "warning" in line]
    for line in problems[:5]:
        print(f"server log ({label}): {line}", file=sys.stderr)


def failing_policies(helpers):
    """Like bench_policies, but free.lua's `limits` raises: the tier has no (working) limits."""
    def write(directory):
        helpers.bench_policies(directory)
        with open(os.path.join(directory, "free.lua"), "w") as policy:
            policy.write('return {\n  limits = function(tenant) error("no limits") end,\n'
                         '  on_over_quota = function(usage, limits) return "reject" end,\n}\n')
    return write


def run_quota(helpers, args, work):
    """SQLite only: two servers at once, each on its own database file."""
    sides = {}
    logs = []
    try:
        for side, policies in (("quotas", None), ("no quotas", failing_policies(helpers))):
            slug = side.replace(" ", "-")
            log_path = os.path.join(work, f"quota-{slug}-server.log")
            log = open(log_path, "w")
            logs.append((log, log_path, side))
            database = f"sqlite:{work}/quota-{slug}.sqlite"
            server = helpers.Server(args.binary, database, log, policies=policies)
            devices_file = os.path.join(work, f"quota-{slug}-devices.txt")
            helpers.register_tenant(server.base, f"quota-{slug}@example.com", f"Bench {side}", args.devices,
                                    devices_file, "QUOTA")
            sides[side] = {"server": server, "database": database, "devices": devices_file, "runs": []}
        ingest = os.path.join(HERE, "ingest.lua")
        epoch = int(time.time()) - 3 * 86400
        for side, entry in sides.items():  # warm-up, 2 s each
            helpers.wrk(entry["server"].base, ingest, 2, args.connections, args.threads,
                        {"BENCH_DEVICES": entry["devices"], "BENCH_BATCH": "1", "BENCH_BASE_EPOCH": str(epoch)})
        rounds = getattr(args, "quota_rounds", QUOTA_ROUNDS)
        for round_index in range(rounds):
            order = list(sides.items()) if round_index % 2 == 0 else list(sides.items())[::-1]
            for side, entry in order:
                before = helpers.count_samples(entry["database"])
                cpu_before = cpu_seconds(entry["server"].process.pid)
                result = helpers.wrk(entry["server"].base, ingest, args.seconds, args.connections, args.threads,
                                     {"BENCH_DEVICES": entry["devices"], "BENCH_BATCH": "1",
                                      "BENCH_BASE_EPOCH": str(epoch + (round_index + 1) * 86400 // 4)})
                result["cpu"] = cpu_seconds(entry["server"].process.pid) - cpu_before
                result["committed"] = helpers.count_samples(entry["database"]) - before
                entry["runs"].append(result)
        print(f"\n| sqlite | single-sample ingest, {rounds} interleaved rounds of {args.seconds} s | "
              f"requests/s per round | median | p50 ms | p99 ms | committed samples/s (median round) | "
              f"server CPU µs/sample per round | median | non-2xx |")
        print("|---|---|---|---:|---:|---:|---:|---|---:|---:|")
        medians, cpu_medians = {}, {}
        for side, entry in sides.items():
            runs = entry["runs"]
            median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
            medians[side] = median["rps"]
            per_round = ", ".join(f"{r['rps']:,.0f}" for r in runs)
            cpu = [r["cpu"] * 1e6 / max(1, r["committed"]) for r in runs]
            cpu_medians[side] = sorted(cpu)[len(cpu) // 2]
            print(f"| sqlite | {side} | {per_round} | {median['rps']:,.0f} | "
                  f"{median['p50_ms']:.2f} | {median['p99_ms']:.2f} | {median['committed'] / median['seconds']:,.0f} | "
                  f"{', '.join(f'{c:.0f}' for c in cpu)} | {cpu_medians[side]:.0f} | {sum(r['non2xx'] + r['errors'] for r in runs)} |")
        ratio = medians["quotas"] / medians["no quotas"]
        cpu_ratio = cpu_medians["quotas"] / cpu_medians["no quotas"]
        print(f"| sqlite | quotas vs no quotas (medians) | | {ratio:.1%} | | | | | CPU {cpu_ratio:.1%} | aim ≥ 95 %: "
              f"{'met' if ratio >= 0.95 else 'not met'} |")
        sys.stdout.flush()
    finally:
        for entry in sides.values():
            entry["server"].stop()
        for log, path, side in logs:
            log.close()
            report_log(path, f"quota, {side}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--suite", choices=["export", "quota", "both"], default="both")
    parser.add_argument("--quota-rounds", type=int, default=QUOTA_ROUNDS)
    args = parser.parse_args()
    helpers = load_helpers()
    work = tempfile.mkdtemp(prefix="thermostat-bench-export-")
    try:
        if args.suite in ("export", "both"):
            backends = []
            if args.backend in ("sqlite", "both"):
                backends.append(("sqlite", f"sqlite:{work}/export.sqlite"))
            if args.backend in ("postgres", "both"):
                url = os.environ.get("BENCH_DATABASE_URL")
                if not url:
                    raise SystemExit("BENCH_DATABASE_URL is not set")
                backends.append(("postgres", url))
            for name, database in backends:
                run_export(helpers, name, database, args, work)
        if args.suite in ("quota", "both"):
            run_quota(helpers, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
