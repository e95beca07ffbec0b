"""Alert benchmark: single-sample ingest with 10 active alert rules per device against none, and
the delay from a sample's commit to its alert's webhook under that load.

Run by `scripts/bench.py --suite alerts` (part of `make bench`). Two tenants on one release
server, each with its own 64 devices: one without rules (the baseline), one with 10 enabled
rules on all its devices — six built-in (threshold x2, sustained, rate-of-change x2,
stale-device) and four tenant Lua scripts — one of them (a threshold at 25 °C) notifying a
webhook receiver run by this script on loopback. wrk drives single-sample ingest against each
tenant in turn (median of rounds); during the rules' runs a probe device of the ruled tenant
posts a hot sample, then a cool one, every 0.5 s, and the receiver timestamps each `firing`
webhook. Each hot sample has a temperature of its own, which its alert's `value` carries: the
delay is that webhook's receipt time minus the moment the hot sample was answered (so
committed); hot samples whose webhook never came are counted apart. After each ruled run the
script waits for the evaluation queue to drain and reports how long that took. It also reports
the CPU the server and its Lua workers spent per request (from /proc; a ruled run's counts until
its queue drained, so evaluation left for after the load is included): steadier than requests/s
on a shared machine, where the load generator's share moves from run to run.
"""

import http.server
import json
import os
import statistics
import threading
import time

LUA_RULES = {
    "bench-counter": """
return { evaluate = function(sample, state, ctx)
  state.n = (state.n or 0) + 1
  if state.n % 1000 == 0 then return { { key = "thousand", message = "another thousand" } }, state end
  return {}, state
end }""",
    "bench-heating": """
return { evaluate = function(sample, state, ctx)
  if sample.output ~= "HEAT_ON" then return {}, {} end
  state.since = state.since or sample.time
  state.start = state.start or sample.temp_inside_c
  if sample.time - state.since > 3600 and sample.temp_inside_c - state.start < 0.5 then
    return { { key = "not-warming", message = "heating on without warming" } }, state
  end
  return {}, state
end }""",
    "bench-band": """
local threshold = require("threshold")
return { evaluate = function(sample, state, ctx) return threshold.evaluate(sample, state, ctx) end }""",
    "bench-mode": """
return { evaluate = function(sample, state, ctx)
  if sample.mode == "OFF" and sample.temp_inside_c < 5 then
    return { { key = "frost", severity = "critical", message = "frost risk", value = sample.temp_inside_c } }, state
  end
  return {}, state
end }""",
}

BUILT_IN_RULES = [
    ("cold", "threshold", {"high_c": False, "low_c": 5}),
    ("hot-outside", "threshold", {"field": "temp_outside_c", "high_c": 40}),
    ("long-hot", "sustained", {"above_c": 30, "minutes": 30}),
    ("fast", "rate-of-change", {"max_c_per_hour": 50}),
    ("fast-outside", "rate-of-change", {"field": "temp_outside_c", "max_c_per_hour": 50}),
    # wrk's samples are 30 days old: a silence limit past that keeps this rule quiet, like most
    # rules most of the time.
    ("silent", "stale-device", {"max_silence_minutes": 90 * 24 * 60}),
]


class Receiver:
    """Webhooks on loopback: the value and arrival time of each firing for the probe device."""

    def __init__(self, probe):
        self.firings = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.monotonic()
                payload = json.loads(body or b"{}")
                if payload.get("event") == "firing" and payload.get("device") == probe:
                    with receiver.lock:
                        receiver.firings.append((payload.get("value"), arrived))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def set_up_rules(bench, base, cookie, webhook_url):
    for name, source in LUA_RULES.items():
        _, _, uploaded = bench.call(base, "/api/scripts/", {"name": name, "hook": "alert", "source": source},
                                    {"Cookie": cookie})
        bench.call(base, f"/api/scripts/{uploaded['script']['id']}/activate/", {}, {"Cookie": cookie})
    _, _, channel = bench.call(base, "/api/alerts/channels/", {"kind": "webhook", "name": "bench", "url": webhook_url},
                               {"Cookie": cookie})
    rules = [(name, script, config, []) for name, script, config in BUILT_IN_RULES]
    rules += [(name, name, {"high_c": 25, "hysteresis_c": 0.5} if name == "bench-band" else {}, []) for name in LUA_RULES]
    rules = [(n, s, c, [channel["channel"]["id"]] if n == "bench-band" else ch) for n, s, c, ch in rules]
    for name, script, config, channels in rules:
        status, _, body = bench.call(base, "/api/alerts/rules/", {
            "name": name, "script": script, "config": config, "cooldown_seconds": 0, "channels": channels},
            {"Cookie": cookie})
        if status != 201:
            raise SystemExit(f"rule {name}: {status} {body}")
    return len(rules)


def probe_loop(bench, base, serial, key, stop, answered):
    """Posts hot then cool samples for the probe device; records when each hot one committed, by
    its temperature (unique among the run's hot samples). Ends on a cool sample, so that the
    next run's first hot sample opens a new alert."""
    step = 0
    while True:
        hot = step % 2 == 0
        if hot and stop.is_set():
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{step % 1000:03d}Z"
        reading = 30 + (step % 1000) / 100 if hot else 20
        sample = {"device_id": serial, "mode": "HEAT", "temp_inside_c": reading, "temp_outside_c": 4.5,
                  "setpoint_c": 21, "hysteresis_c": 0.5, "output": "HEAT_ON", "timestamp": stamp}
        try:
            status, _, _ = bench.call(base, "/api/telemetry/ingest/", sample, {"Authorization": f"Device {serial}:{key}"})
        except OSError:
            status = None
        if hot and status == 200:
            answered[reading] = time.monotonic()
        step += 1
        if hot:
            time.sleep(0.5)
        else:
            stop.wait(0.5)


def wait_for_queue(bench, base, cookie, limit_seconds=300):
    started = time.monotonic()
    while time.monotonic() - started < limit_seconds:
        _, _, status = bench.call(base, "/api/alerts/status/", None, {"Cookie": cookie})
        if status.get("queued_samples") == 0:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def print_header():
    print("| backend | workload | requests/s | p50 ms | p99 ms | vs no rules | evaluation |")
    print("|---|---|---:|---:|---:|---:|---|")


def run(bench, name, database, args, work, rounds=3):
    log = open(os.path.join(work, f"{name}-alerts-server.log"), "w")
    server = bench.Server(args.binary, database, log)
    receiver = None
    try:
        plain_file = os.path.join(work, f"{name}-alerts-plain.txt")
        bench.register_tenant(server.base, "alerts-plain@example.com", "No rules", args.devices, plain_file, "PLAIN")
        ruled_file = os.path.join(work, f"{name}-alerts-ruled.txt")
        cookie = bench.register_tenant(server.base, "alerts-ruled@example.com", "Ten rules", args.devices, ruled_file,
                                       "RULED")
        _, _, probe = bench.call(server.base, "/api/devices/register/", {"serial": "PROBE-1"}, {"Cookie": cookie})
        receiver = Receiver("PROBE-1")
        count = set_up_rules(bench, server.base, cookie, receiver.url)
        ingest = os.path.join(bench.HERE, "bench", "ingest.lua")
        epoch = int(time.time()) - 30 * 86400

        def ingest_run(devices, day):
            return bench.wrk(server.base, ingest, args.seconds, args.connections, args.threads,
                             {"BENCH_DEVICES": devices, "BENCH_BATCH": "1", "BENCH_BASE_EPOCH": str(epoch + day * 86400)})

        plain, ruled, delays, drains, plain_cpu, ruled_cpu = [], [], [], [], [], []
        unanswered = 0
        pid = server.process.pid
        for index in range(rounds):
            before = bench.process_cpu_seconds(pid)
            plain.append(ingest_run(plain_file, index))
            plain_cpu.append((bench.process_cpu_seconds(pid) - before) / plain[-1]["requests"] * 1e6)
            before = bench.process_cpu_seconds(pid)
            stop, answered = threading.Event(), {}
            with receiver.lock:
                receiver.firings.clear()
            prober = threading.Thread(target=probe_loop,
                                      args=(bench, server.base, "PROBE-1", probe["api_key"], stop, answered))
            prober.start()
            ruled.append(ingest_run(ruled_file, index))
            stop.set()
            prober.join()
            drains.append(wait_for_queue(bench, server.base, cookie))
            ruled_cpu.append((bench.process_cpu_seconds(pid) - before) / ruled[-1]["requests"] * 1e6)
            time.sleep(1)
            with receiver.lock:
                firings = list(receiver.firings)
            arrivals = {value: arrived for value, arrived in firings}
            delays += [(arrivals[value] - sent) * 1000 for value, sent in answered.items() if value in arrivals]
            unanswered += sum(1 for value in answered if value not in arrivals)
        middle = rounds // 2
        plain_median = sorted(plain, key=lambda r: r["rps"])[middle]
        ruled_median = sorted(ruled, key=lambda r: r["rps"])[middle]
        print(f"| {name} | ingest, 1 sample/request, no rules (median of {rounds}) | {plain_median['rps']:,.0f} | "
              f"{plain_median['p50_ms']:.2f} | {plain_median['p99_ms']:.2f} | 100% | "
              f"CPU {statistics.median(plain_cpu):.0f} µs/request |")
        print(f"| {name} | ingest, 1 sample/request, {count} rules per device (median of {rounds}) | "
              f"{ruled_median['rps']:,.0f} | {ruled_median['p50_ms']:.2f} | {ruled_median['p99_ms']:.2f} | "
              f"{ruled_median['rps'] / plain_median['rps']:.0%} | drained {statistics.median(drains):.1f} s after; "
              f"CPU {statistics.median(ruled_cpu):.0f} µs/request "
              f"({statistics.median(ruled_cpu) / statistics.median(plain_cpu):.2f}×) |")
        delay_cells = f"{bench.percentile(delays, 50):.0f} | {bench.percentile(delays, 99):.0f}" if delays else "– | –"
        missing = f"; {unanswered} never came" if unanswered else ""
        print(f"| {name} | commit → webhook under that load ({len(delays)} alerts{missing}) | | {delay_cells} | | |")
    finally:
        if receiver:
            receiver.stop()
        server.stop()
        log.close()
