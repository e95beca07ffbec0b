#!/usr/bin/env python3
"""Storage job benchmark: retention and downsampling on the release server, one backend at a time.

Part of `make bench` (scripts/bench.py, `--suite storage`, also in `all`); alone:
    python3 scripts/bench.py --binary .build/release/thermostat --suite storage --backend sqlite

A fresh tenant on a tier of its own ("jobs", assigned with `thermostat tenant set-tier`) gets
one device with 1,000,000 samples one second apart, from about 12.6 days ago to 1 day ago,
ingested in 1,000-sample batches from 4 client threads: that ingest rate is the baseline of
the same run. The server runs its storage jobs every 10 s (THERMOSTAT_RETENTION_INTERVAL_SECONDS).
Then the tier's policy file is edited twice (the server reads it again within 10 s):
  1. retention_days = 10: the retention job deletes the samples older than 10 days;
  2. and a downsample step {after_days = 2, resolution = "1h"}: the downsampling job rolls the
     samples between 10 and 2 days old up into hourly rollups.
After each edit GET /api/usage/ is polled until the job reports rows; its `rows` and `seconds`
(the run's duration, measured by the server) give rows/s. Every other tier's policy has no
downsampling and keeps ten years, so the jobs work on this tenant alone even when the
PostgreSQL database still holds earlier suites' data.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = 1_000_000
JOBS_TIER = """return {{
  limits = function(tenant)
    return {{ max_devices = 10, max_samples = 100000000, retention_days = {retention},
             ingest_per_minute = 10000000, downsample = {{ {downsample} }} }}
  end,
  on_over_quota = function(usage, limits) return "reject" end,
}}
"""


def policies(helpers):
    def write(directory):
        helpers.bench_policies(directory)
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            with open(path) as policy:
                text = policy.read()
            text = re.sub(r"downsample\s*=\s*\{.*?\}\s*\}\s*,", "downsample = {},", text, flags=re.S)
            text = re.sub(r"\bretention_days\s*=\s*[0-9_]+", "retention_days = 3650", text)
            with open(path, "w") as policy:
                policy.write(text)
        write_jobs_tier(directory, retention=0, downsample="")
    return write


def write_jobs_tier(directory, retention, downsample):
    path = os.path.join(directory, "jobs.lua")
    with open(path + ".new", "w") as policy:
        policy.write(JOBS_TIER.format(retention=retention, downsample=downsample))
    os.replace(path + ".new", path)


def usage_jobs(base, cookie):
    request = urllib.request.Request(base + "/api/usage/", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["jobs"]


def wait_for_rows(base, cookie, job, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        report = usage_jobs(base, cookie).get(job, {})
        if report.get("rows", 0) > 0:
            return report
        time.sleep(0.5)
    raise SystemExit(f"the {job} job reported no rows within {timeout} s")


def run(helpers, name, database, args, work):
    export_bench = helpers.load_suite("export_bench")
    log_path = os.path.join(work, f"{name}-storage-server.log")
    log = open(log_path, "w")
    server = helpers.Server(args.binary, database, log, policies=policies(helpers),
                            extra_env={"THERMOSTAT_RETENTION_INTERVAL_SECONDS": "10",
                                       "THERMOSTAT_REGISTER_RATE_PER_HOUR": "1000"})
    try:
        _, headers, body = helpers.call(server.base, "/api/auth/register/", {
            "email": "jobs@example.com", "password": "Bench-Passw0rd!", "tenant_name": "Bench Jobs"})
        cookie = headers["Set-Cookie"].split(";")[0]
        slug = body["tenant"]["slug"]
        subprocess.run([args.binary, "tenant", "set-tier", "--database", database, slug, "jobs"], check=True,
                       env=dict(os.environ, THERMOSTAT_POLICIES_DIR=server.policies), capture_output=True)
        _, _, device = helpers.call(server.base, "/api/devices/register/", {"serial": "JOB-0000"}, {"Cookie": cookie})
        started = time.perf_counter()
        export_bench.ingest_batches(server.port, "JOB-0000", device["api_key"], int(time.time()) - SAMPLES - 86400)
        ingest_rate = SAMPLES / (time.perf_counter() - started)

        write_jobs_tier(server.policies, retention=10, downsample="")
        retention = wait_for_rows(server.base, cookie, "retention")
        write_jobs_tier(server.policies, retention=10, downsample='{ after_days = 2, resolution = "1h" }')
        downsample = wait_for_rows(server.base, cookie, "downsample")
        print(f"| {name} | ingest, 1,000 samples/request, 4 threads (baseline) | {SAMPLES:,} | "
              f"{SAMPLES / ingest_rate:.2f} | **{ingest_rate:,.0f}** | 100 % |")
        for label, report in (("retention: delete samples older than 10 days", retention),
                              ("downsampling: roll samples 2–10 days old into 1 h rollups", downsample)):
            rate = report["rows"] / report["seconds"]
            print(f"| {name} | {label} | {report['rows']:,} | {report['seconds']:.2f} | **{rate:,.0f}** | "
                  f"{rate / ingest_rate * 100:.0f} % |")
        sys.stdout.flush()
    finally:
        server.stop()
        log.close()
        export_bench.report_log(log_path, f"{name}, storage jobs")


def print_header():
    print("| backend | work | rows | seconds | rows/s | vs ingest |")
    print("|---|---|---:|---:|---:|---:|")
